"""The spread of each per-rank figure: report.html's cells, the terminal's ± row, summary.json's ``spread``.

A cell of report.html's per-rank table shows the headline figure (the mean over the rank's analyzed steps, outlier
steps left out: ``RankOverlap``'s ``representative``) and beside it ``±x%``: half the range of the steps that mean
is over, in % of the mean (every averaged step lies within the mean ± x% when the mean is central; a lopsided range
shows in the tooltip); for ``overlap %``, half the range in percentage points.  The cell's tooltip gives the median
and the range over every analyzed step, the outlier steps left out named; the cell's ``data-sort`` is the figure
itself, so the table sorts by the number, not by the text.

The same spreads, by the same function (``rank_spreads``), are summary.json's per-rank ``spread`` (``spread_json``)
and the ``±`` row under each rank of the terminal's per-rank table (``row_beside``), the ``±`` text of both one
function (``beside``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..analysis.overlap import RankOverlap
from .safe import html_text as h

# the per-rank table's columns with a spread, and the per-step figure of each (``Overlap``'s attribute)
FIELDS = {"step": "step_ns", "compute": "compute_ns", "comm": "comm_ns", "overlapped": "overlapped_ns",
          "exposed": "exposed_ns", "other": "other_ns", "overlap %": "overlap_pct"}

# summary.json's per-rank key of each ``FIELDS`` column: ``spread[key]`` is the spread of the row's ``key``
KEYS = {"step": "step_ms", "compute": "compute_ms", "comm": "comm_ms", "overlapped": "overlapped_ms",
        "exposed": "exposed_comm_ms", "other": "other_ms", "overlap %": "overlap_pct"}


@dataclass(frozen=True, slots=True, kw_only=True)
class CellSpread:
    """One per-step figure of one rank over its analyzed steps (ms, or % for ``overlap %``)."""

    steps: int  # analyzed steps
    kept: int  # the steps the mean is over (outliers left out)
    median: float  # over every analyzed step
    low: float
    high: float
    kept_low: float  # the range of the kept steps
    kept_high: float
    left_out: tuple[int, ...]  # outlier step numbers

    def half_range_pct(self, mean: float) -> float | None:
        """Half the kept steps' range in % of ``mean``; None with one kept step or a zero mean."""
        if self.kept < 2 or not mean:
            return None
        return 50.0 * (self.kept_high - self.kept_low) / abs(mean)


def rank_spreads(o: RankOverlap) -> dict[str, CellSpread]:
    """Each ``FIELDS`` figure's spread over the rank's analyzed steps; empty without steps."""
    if not o.steps:
        return {}
    left_out = tuple(sorted(n for n, _ms, _why in o.outliers))
    kept_steps = {s.step for s in o.kept}
    attrs = tuple(FIELDS.values())
    vals = np.array([[getattr(s, a) for a in attrs] for s in o.steps], dtype=np.float64)  # a row per step
    # ns / 1e6: the step's values are ``spread_ms``'s, bit for bit; overlap % as it is
    vals /= np.array([1.0 if a == "overlap_pct" else 1e6 for a in attrs])
    kept = vals[np.array([s.step in kept_steps for s in o.steps])]
    med, low, high = np.median(vals, axis=0), vals.min(axis=0), vals.max(axis=0)
    kept_low, kept_high = kept.min(axis=0), kept.max(axis=0)
    return {col: CellSpread(steps=len(vals), kept=len(kept), median=float(med[i]), low=float(low[i]),
                            high=float(high[i]), kept_low=float(kept_low[i]), kept_high=float(kept_high[i]),
                            left_out=left_out)
            for i, col in enumerate(FIELDS)}


def spread_json(o: RankOverlap) -> dict[str, dict[str, float | int]] | None:
    """summary.json's per-rank ``spread``: for each figure (keyed as the row's own key, ``KEYS``) its median, min and
    max over every analyzed step, ``kept_min`` / ``kept_max`` over the steps its mean is over, and the counts of
    both; None without analyzed steps.  Rounded as the row's figures: ms to 3 decimals, % to 2."""
    sps = rank_spreads(o)
    if not sps:
        return None
    out = {}
    for col, sp in sps.items():
        nd = 2 if col == "overlap %" else 3
        out[KEYS[col]] = {"median": round(sp.median, nd), "min": round(sp.low, nd), "max": round(sp.high, nd),
                          "kept_min": round(sp.kept_low, nd), "kept_max": round(sp.kept_high, nd),
                          "steps": sp.steps, "kept": sp.kept}
    return out


def beside(value: float, sp: CellSpread, *, unit: str = "ms") -> str:
    """The spread shown beside a figure: ``±x%``, half the kept steps' range in % of ``value`` (one decimal under
    100%, none from 100%: the terminal's column stays narrow); for a percentage (``unit`` "%") ``±x``, half the
    range in points (±2.0% of 40% would read as 38-42%); "" with fewer than two kept steps or a zero figure."""
    if unit == "%":
        return f"±{(sp.kept_high - sp.kept_low) / 2:.1f}" if sp.kept >= 2 else ""
    pct = sp.half_range_pct(value)
    if pct is None:
        return ""
    return f"±{pct:.1f}%" if pct < 99.95 else f"±{pct:.0f}%"


def cell(value: float | None, sp: CellSpread | None, *, nd: int = 2, unit: str = "ms") -> str:
    """A table cell: ``value`` with its spread beside it and in its tooltip, sorted by ``value``."""
    if value is None:
        return "<td class='n' data-sort=''>-</td>"
    text = f"{value:.{nd}f}"
    if sp is None:
        return f"<td class='n' data-sort='{value!r}'>{text}</td>"
    pm = beside(value, sp, unit=unit)
    span = f"<span class='spread'> {pm}</span>" if pm else ""
    return f"<td class='n' data-sort='{value!r}' title='{h(tooltip(value, sp, nd=nd, unit=unit))}'>{text}{span}</td>"


def tooltip(value: float, sp: CellSpread, *, nd: int = 2, unit: str = "ms") -> str:
    """What a cell's tooltip says: the mean and what it is over, the median and the range."""
    if sp.steps < 2:
        return f"{value:.{nd}f} {unit}: one analyzed step, no spread"
    out = "; ".join(f"step #{n}" for n in sp.left_out)
    left = f" ({out} left out: an outlier step)" if sp.left_out else ""
    return (f"mean {value:.{nd}f} {unit} over {sp.kept} steps{left}; median {sp.median:.{nd}f}, "
            f"range {sp.low:.{nd}f}-{sp.high:.{nd}f} over {sp.steps} analyzed steps")


def row_beside(row: dict[str, Any], sps: dict[str, CellSpread]) -> tuple[str, ...]:
    """The ``beside`` text of each ``FIELDS`` figure of a summary.json per-rank ``row``, in ``FIELDS``' order ("" where
    there is none): the terminal's ``±`` row under the rank, the same text as the HTML's cells."""
    out = []
    for col, key in KEYS.items():
        sp, value = sps.get(col), row.get(key)
        out.append("" if sp is None or value is None else beside(value, sp, unit="%" if col == "overlap %" else "ms"))
    return tuple(out)
