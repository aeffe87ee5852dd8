"""Errors the user can act on.  The CLI prints them as one line and exits with 2."""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """The input cannot be used.  ``str()`` names the file and what is wrong with it."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):  # keep the two fields across process boundaries
        return (InputError, (self.path, self.problem))


class NoUsableTraces(InputError):
    """Every trace-like file in a folder failed to read: the first one's problem, and each one's (``skipped``)."""

    def __init__(self, path: object, problem: str, skipped: tuple[str, ...] = ()) -> None:
        super().__init__(path, problem)
        self.skipped = skipped

    def __reduce__(self):
        return (NoUsableTraces, (self.path, self.problem, self.skipped))


def read_bounded(path: Path, max_bytes: int, what: str) -> bytes:
    """A small input file's bytes (a sidecar, a hang dump, a Flight Recorder pickle); InputError when it cannot be
    read or is larger than ``max_bytes``."""
    try:
        if path.stat().st_size > max_bytes:
            raise InputError(path, f"{what} larger than {max_bytes:,} bytes")
        return path.read_bytes()
    except OSError as e:
        raise InputError(path, f"cannot be read ({e.strerror or e})") from None
