"""The errors a user can cause and fix; every stage turns them into one line and exit code 2."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class UserError(Exception):
    """A user-fixable problem; its message names the problem and the fix."""


class ConfigError(UserError, ValueError):
    """A problem with params.yaml."""


class DataError(UserError, ValueError):
    """A problem with the input data (or several, found in one pass: ``problems``, each naming its fix)."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class Problems:
    """The problems of one pass over the data, each a message that names its fix: checks go on after a
    problem, and ``raise_any`` raises them together as one DataError (one problem: its own message; more:
    numbered, on one line), so that a user learns every problem from one run."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def add(self, message: str) -> None:
        """One more problem (a repeated message is named once)."""
        if message not in self.found:
            self.found.append(message)

    def collect(self, check: Callable[[], T]) -> T | None:
        """Run a check; its DataError's problems join these (None returned) instead of stopping the pass."""
        try:
            return check()
        except DataError as exc:
            for message in exc.problems:
                self.add(message)
            return None

    def raise_any(self) -> None:
        """Raise every problem found as one DataError, if there is any."""
        if len(self.found) == 1:
            raise DataError(self.found[0])
        if self.found:
            numbered = " ".join(f"({i}) {message.rstrip('.')}." for i, message in enumerate(self.found, 1))
            raise DataError(f"{len(self.found)} problems, each with its fix: {numbered}", list(self.found))


class StageError(UserError, RuntimeError):
    """A problem found while a stage runs (a missing input, a bad model file, diverged training...)."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived. A BaseException, like KeyboardInterrupt, so that no ``except
    Exception`` swallows it: cleanup runs in ``finally`` blocks, then the stage exits 130 or 143."""

    def __init__(self, signal_name: str, exit_code: int) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name
        self.exit_code = exit_code
