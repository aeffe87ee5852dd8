"""The spread beside each per-rank figure of report.html's per-rank table.

A cell shows the headline figure (the mean over the rank's analyzed steps, outlier steps left out: ``RankOverlap``'s
``representative``) and beside it ``±x%``: half the range of the steps that mean is over, in % of the mean (every
averaged step lies within the mean ± x% when the mean is central; a lopsided range shows in the tooltip); for
``overlap %``, half the range in percentage points.  The
cell's tooltip gives the median and the range over every analyzed step, the outlier steps left out named; the
cell's ``data-sort`` is the figure itself, so the table sorts by the number, not by the text.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..analysis.overlap import RankOverlap
from .safe import html_text as h

# the per-rank table's columns with a spread, and the per-step figure of each (``Overlap``'s attribute)
FIELDS = {"step": "step_ns", "compute": "compute_ns", "comm": "comm_ns", "overlapped": "overlapped_ns",
          "exposed": "exposed_ns", "other": "other_ns", "overlap %": "overlap_pct"}


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
    out = {}
    for col, attr in FIELDS.items():
        scale = 1.0 if attr == "overlap_pct" else 1e-6
        vals = np.array([getattr(s, attr) * scale for s in o.steps], dtype=np.float64)
        kept = np.array([getattr(s, attr) * scale for s in o.steps if s.step in kept_steps], dtype=np.float64)
        out[col] = CellSpread(steps=len(vals), kept=len(kept), median=float(np.median(vals)), low=float(vals.min()),
                              high=float(vals.max()), kept_low=float(kept.min()), kept_high=float(kept.max()),
                              left_out=left_out)
    return out


def cell(value: float | None, sp: CellSpread | None, *, nd: int = 2, unit: str = "ms") -> str:
    """A table cell: ``value`` with its spread beside it and in its tooltip, sorted by ``value``."""
    if value is None:
        return "<td class='n' data-sort=''>-</td>"
    text = f"{value:.{nd}f}"
    if sp is None:
        return f"<td class='n' data-sort='{value!r}'>{text}</td>"
    if unit == "%":  # a percentage's spread in points: ±2.0% of 40% would read as 38-42%
        pts = (sp.kept_high - sp.kept_low) / 2 if sp.kept >= 2 else None
        beside = f"<span class='spread'> ±{pts:.1f}</span>" if pts is not None else ""
    else:
        pct = sp.half_range_pct(value)
        beside = f"<span class='spread'> ±{pct:.1f}%</span>" if pct is not None else ""
    return f"<td class='n' data-sort='{value!r}' title='{h(tooltip(value, sp, nd=nd, unit=unit))}'>{text}{beside}</td>"


def tooltip(value: float, sp: CellSpread, *, nd: int = 2, unit: str = "ms") -> str:
    """What a cell's tooltip says: the mean and what it is over, the median and the range."""
    if sp.steps < 2:
        return f"{value:.{nd}f} {unit}: one analyzed step, no spread"
    out = "; ".join(f"step #{n}" for n in sp.left_out)
    left = f" ({out} left out: an outlier step)" if sp.left_out else ""
    return (f"mean {value:.{nd}f} {unit} over {sp.kept} steps{left}; median {sp.median:.{nd}f}, "
            f"range {sp.low:.{nd}f}-{sp.high:.{nd}f} over {sp.steps} analyzed steps")
