"""Tests of pipeline.project and of the repository's structure."""
