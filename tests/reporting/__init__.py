"""Tests of pipeline.reporting."""
