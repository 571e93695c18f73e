"""Pipelines: how a generator is trained, evaluated, shown and shipped."""
