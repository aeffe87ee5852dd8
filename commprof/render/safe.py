"""Make strings that come from traces harmless in a terminal and in HTML."""

from __future__ import annotations

import html
import re

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# commprof's own sentences (findings, verdicts, warnings, notes): never cut, in the terminal or the HTML (a root cause
# of 1,143 characters lost its advice to a 1,000-character bound); bounded only against a runaway input
WHOLE = 100_000


def plain(s: object, limit: int = 200) -> str:
    """No control characters (terminal escape codes become visible '?'), bounded length."""
    text = _CONTROL.sub("?", str(s))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def html_text(s: object, limit: int = 400) -> str:
    return html.escape(plain(s, limit), quote=True)
