"""A run's directory: metrics, samples, curves, checkpoints and its W&B tracking."""
