"""Tune: hyper-parameter search with Optuna, each trial a normal run."""
