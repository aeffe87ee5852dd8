"""Tables and images as the terminal (rich) and the HTML report draw them, shared by the core renderers and the
family views (``render/families``)."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence

from rich.table import Table

from .safe import html_text as h

WIDTH = 100  # the terminal report fits 100 columns
MAX_ROWS = 12
SUMMED_NOTE = ("sum ms: the collectives' own times added up per step; those that run at once (gloo's worker "
               "threads, NCCL's streams) each count in full, so the sum can exceed the rank's comm, their union")


def table(title: str, cols: Sequence[str], left: Sequence[str] = ()) -> Table:
    """A terminal table ``WIDTH`` columns wide that never cuts a value: where the columns do not fit, the text
    columns (``left``) and the headers wrap, folding a long name over lines, and the figures keep their width."""
    t = Table(title=title, title_justify="left", width=WIDTH)
    for col in cols:
        if col in left:
            t.add_column(col, justify="left", overflow="fold")
        else:
            t.add_column(col, justify="right", no_wrap=True, min_width=_word(col))
    return t


def _word(header: str) -> int:
    """The header's longest word: a figure's column is never narrower (its header wraps between words)."""
    return max((len(w) for w in header.split()), default=1)


def html_row(values: Iterable[object]) -> str:
    return "<tr>" + "".join(f"<td class='n'>{v}</td>" for v in values) + "</tr>"


def html_head(cols: Sequence[str], *, name: str = "") -> str:
    """A table's start: its header row (``cols``) and the opened body (close it with ``HTML_END``); ``name``: the
    table's ``data-commprof`` name (``table-NAME``), which the page's sort and filter script and the browser tests
    use."""
    attr = f" data-commprof='table-{name}'" if name else ""
    return f"<table{attr}><thead><tr>" + "".join(f"<th>{c}</th>" for c in cols) + "</tr></thead><tbody>"


HTML_END = "</tbody></table>"


def html_img(name: str, png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img id="plot-{name}" alt="{h(alt)}" src="data:image/png;base64,{data}">'
