"""Evaluation: scorers, metrics, the eval command and comparisons."""
