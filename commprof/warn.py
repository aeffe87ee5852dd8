"""commprof's run-time warnings: one clean line each ("commprof: …"), no source line, still Python warnings
(``-W``, ``warnings.filterwarnings`` and ``pytest.warns`` see them as ``CommprofWarning``)."""

from __future__ import annotations

import warnings

_original = warnings.formatwarning


class CommprofWarning(RuntimeWarning):
    """A warning from commprof; its text starts with "commprof" and names the rank where one is concerned."""


def _format(message, category, filename, lineno, line=None) -> str:  # type: ignore[no-untyped-def]
    if isinstance(category, type) and issubclass(category, CommprofWarning):
        return f"{message}\n"
    return _original(message, category, filename, lineno, line)


def warn(text: str, stacklevel: int = 2) -> None:
    """Emit ``text`` (which should start with "commprof") as one line."""
    if warnings.formatwarning is not _format:
        warnings.formatwarning = _format  # only CommprofWarning is formatted differently
    warnings.warn(CommprofWarning(text), stacklevel=stacklevel + 1)
