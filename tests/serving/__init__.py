"""Tests of pipeline.serving."""
