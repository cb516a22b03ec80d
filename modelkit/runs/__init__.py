"""Runs: the run folder store, which is the only database the app has."""
