"""medtune: fine-tune and evaluate language models for clinical multiple-choice QA."""

__version__ = "0.1.0"
