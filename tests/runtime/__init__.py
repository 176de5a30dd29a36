"""Tests of pipeline.runtime."""
