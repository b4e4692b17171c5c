"""Fine-tuning: one recipe, one entry point; methods differ only in how they adapt the model."""
