"""The terminal tables (``render/tables.py``): 100 columns wide, and no value is ever cut."""

from __future__ import annotations

import io

from rich.console import Console

from commprof.render.tables import WIDTH, table

COLS = ("op", "via", "group", "n", "dtype", "count", "bytes", "sum ms", "algbw GB/s", "busbw GB/s")
ROW = ("reduce_scatter_tensor_coalesced", "NCCL", "0", "16", "float32", "2.0", "117.4 MB", "1234.56", "154.69",
       "145.02")


def _draw() -> list[str]:
    t = table("Collectives", COLS, left=("op", "via", "dtype", "group"))
    t.add_row(*ROW)
    buf = io.StringIO()
    Console(file=buf, width=WIDTH, no_color=True, force_terminal=False).print(t)
    return buf.getvalue().splitlines()


def test_a_table_too_wide_for_the_terminal_wraps_its_text_and_keeps_every_figure():
    lines = _draw()
    assert max(len(line) for line in lines) <= WIDTH
    assert not any("…" in line for line in lines)  # nothing cut (it was: '117.4 …', a rank count '…')
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in lines if line.startswith("│")]
    first = cells[0]
    for col, value in zip(COLS[1:], ROW[1:], strict=True):  # every value whole, in its column's first line
        assert first[COLS.index(col)] == value, (col, first)
    # the long op name folds over lines and is all there
    assert "".join(c[0] for c in cells) == ROW[0]
    header = " ".join(line for line in lines if line.startswith("┃"))
    assert all(word in header for col in COLS for word in col.split())  # headers wrap between words, never cut


def test_to_dataframe_without_pandas_names_the_extra(monkeypatch):
    import sys

    import pytest

    from commprof.render.frames import to_dataframe

    monkeypatch.setitem(sys.modules, "pandas", None)  # as if not installed
    with pytest.raises(ImportError, match=r"commprof\[notebooks\]"):
        to_dataframe(None)  # type: ignore[arg-type]
