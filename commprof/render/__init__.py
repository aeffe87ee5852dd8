"""Renderers: each takes a ``Report`` and returns text or bytes (``render(report) -> str | bytes``).

``FORMATS`` is the registry the CLI's ``--format`` uses: a format's name, the file it writes (none for ``text``,
which is printed) and its renderer, imported when asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..formats import files


@dataclass(frozen=True, slots=True)
class Format:
    name: str
    filename: str | None  # None: printed, not written
    module: str  # commprof.render.<module>.render
    help: str

    def renderer(self) -> Callable[..., Any]:
        return importlib.import_module(f"{__name__}.{self.module}").render


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("text", None, "text", "the summary, printed"),
    Format("json", files.SUMMARY, "summary", "summary.json"),
    Format("html", files.HTML, "html", "report.html with its plots (PNG files beside it)"),
    Format("perfetto", files.MERGED, "perfetto",
           "merged.json: every rank clock-aligned in one trace for Perfetto / chrome://tracing"),
)}


def render(report: Any, fmt: str) -> str | bytes:
    """One format of a report (``FORMATS``' names)."""
    return FORMATS[fmt].renderer()(report)
