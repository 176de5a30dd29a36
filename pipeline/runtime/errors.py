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


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived. A BaseException, like KeyboardInterrupt, so that no ``except
    Exception`` swallows it: cleanup runs in ``finally`` blocks, then the stage exits 130 or 143."""

    def __init__(self, signal_name: str, exit_code: int) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name
        self.exit_code = exit_code
