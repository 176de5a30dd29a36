"""Tests of pipeline.modeling."""
