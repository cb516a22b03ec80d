"""Evaluation: metrics, evaluating a run on its splits, embeddings and RSA."""
