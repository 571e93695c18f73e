"""Tests of pipelines.data."""
