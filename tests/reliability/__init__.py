"""Seeded fuzzing of the commands with damaged datasets, checkpoints and bundles."""
