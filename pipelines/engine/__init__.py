"""The training engine shared by every pipeline: launch, trainer, data loading, checkpoints, processes, logs."""
