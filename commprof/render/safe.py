"""Make strings that come from traces harmless in a terminal and in HTML."""

from __future__ import annotations

import html
import re

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def plain(s: object, limit: int = 200) -> str:
    """No control characters (terminal escape codes become visible '?'), bounded length."""
    text = _CONTROL.sub("?", str(s))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def html_text(s: object, limit: int = 400) -> str:
    return html.escape(plain(s, limit), quote=True)
