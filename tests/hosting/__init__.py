"""Tests of pipeline.hosting."""
