"""Errors the user can act on.  The CLI prints them as one line and exits with 2."""

from __future__ import annotations


class InputError(Exception):
    """The input cannot be used.  ``str()`` names the file and what is wrong with it."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):  # keep the two fields across process boundaries
        return (InputError, (self.path, self.problem))
