"""The errors a user can cause and fix; every stage turns them into one line and exit code 2."""

from __future__ import annotations


class UserError(Exception):
    """A user-fixable problem; its message names the problem and the fix."""


class ConfigError(UserError, ValueError):
    """A problem with params.yaml."""


class DataError(UserError, ValueError):
    """A problem with the input data."""


class StageError(UserError, RuntimeError):
    """A problem found while a stage runs (a missing input, a bad model file, diverged training...)."""
