"""The per-rank plots past PLOT_RANKS_MAX ranks (render/plot/scale.py) and the spread beside the per-rank table's
figures (render/spreads.py).  The plots are read off the matplotlib figures as drawn (the golden tests' reader)."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest

from commprof.analysis.overlap import Overlap, RankOverlap
from commprof.render import spreads
from commprof.render.plot import plots, scale
from conftest import ROOT

sys.path.insert(0, str(ROOT / "tests" / "golden"))  # outputs.figure_data: what a figure draws


@pytest.fixture(scope="module")
def many():
    """A synthetic data-parallel run of 80 ranks (past PLOT_RANKS_MAX), rank 3 computing 15% slower."""
    import synthetic

    from commprof import analyze

    assert scale.PLOT_RANKS_MAX < 80
    return analyze(synthetic.big_run(80, steps=2, kernels=24, buckets=2, slow_rank=3))


def _drawn(monkeypatch, module, fn, *args) -> dict:
    """What ``fn(*args)`` draws (``outputs.figure_data``) and every text on the figure."""
    from outputs import figure_data

    got: dict = {}
    real = module.to_png

    def capture(plt, fig, *a, **k):
        got.update(figure_data(fig))
        got["texts"] = [t.get_text() for ax in fig.axes for t in ax.texts]
        got["xticks"] = [t.get_text() for ax in fig.axes for t in ax.get_xticklabels()]
        got["xlabel"] = fig.axes[0].get_xlabel()
        return real(plt, fig, *a, **k)

    monkeypatch.setattr(module, "to_png", capture)
    png = fn(*args)
    assert png is not None and png.startswith(b"\x89PNG")
    return got


def test_breakdown_of_many_ranks_is_one_stack_over_the_sorted_ranks(many, monkeypatch):
    got = _drawn(monkeypatch, scale, plots.breakdown, many)
    ax = got["axes"][0]
    assert ax["patches"] == []  # no bar per rank
    assert len(ax["collections"]) == 4  # one area per part of the step
    # the stack's top is each rank's mean step: its highest point, the longest mean step of any rank
    top = max(np.asarray(c["paths"][0])[:, 1].max() for c in ax["collections"])
    assert top == pytest.approx(max(o.mean("step_ns") for o in many.overlaps) / 1e6, rel=1e-5)
    # the busiest rank is the slow one, named at the right and first in the list
    assert got["xticks"][-1].endswith("rank 3") and "most compute" in got["xticks"][-1]
    assert "80 ranks, sorted by compute" in got["xlabel"]
    assert "\nmost compute (ms compute / step): rank 3 " in got["xlabel"]


@pytest.mark.parametrize("rows", [128, 16])  # a row per rank; rows of 5 ranks
def test_stragglers_of_many_ranks_keep_the_pale_row(many, monkeypatch, rows):
    """Rank 3 arrives last at most all-reduces: its row (or its group's, 5 ranks a row) waits least of all."""
    monkeypatch.setattr(scale, "MAX_ROWS", rows)
    got = _drawn(monkeypatch, scale, plots.stragglers, many)
    img = np.asarray(got["axes"][0]["images"][0])
    groups = scale._row_groups(80, rows)
    assert img.shape[0] == len(groups) == min(rows, 80)
    assert len(got["axes"][0]["yticklabels"]) <= 17
    row = next(i for i, (a, b) in enumerate(groups) if a <= 3 < b)
    totals = img.sum(axis=1)
    assert int(np.argmin(totals)) == row and totals[row] < 0.1 * np.median(totals)
    named = r"\nlast to arrive most often \(▶ their rows\): rank 3 \([1-4] of 4\)"
    assert re.search(named, got["xlabel"]), got["xlabel"]
    marks = [ln for ln in got["axes"][0]["lines"] if ln[0] and ln[0][0] == -0.5]
    assert marks and row in marks[0][1]
    assert ("in rows of 5, each row its least wait" in got["axes"][0]["title"]) == (rows == 16)


def test_timeline_draws_the_stragglers_then_ranks_spread_evenly(many):
    picked = scale.timeline_ranks(many, list(range(80)), 16)
    assert len(picked) == 16 and picked == sorted(picked) and 3 in picked
    assert picked[0] <= 5 and picked[-1] >= 75  # spread over the job, not the first 16
    assert scale.timeline_ranks(many, [0, 1, 2], 16) == [0, 1, 2]


def test_row_groups_cover_every_rank_once():
    for n in (1, 7, 128, 129, 1024, 1000):
        g = scale._row_groups(n)
        size = -(-n // scale.MAX_ROWS)  # ranks a row: as few as fit
        assert len(g) == -(-n // size) <= scale.MAX_ROWS and g[0][0] == 0 and g[-1][1] == n
        assert all(a < b for a, b in g) and all(g[i][1] == g[i + 1][0] for i in range(len(g) - 1))


def _ov(step: int, step_ms: float, exposed_ms: float) -> Overlap:
    return Overlap(step=step, step_ns=int(step_ms * 1e6), compute_ns=int((step_ms - exposed_ms) * 1e6),
                   comm_ns=int(exposed_ms * 2e6), overlapped_ns=int(exposed_ms * 1e6), comm_bytes=1000)


def test_spread_cells_show_the_mean_its_range_and_the_outlier_left_out():
    steps = (_ov(1, 10.0, 1.0), _ov(2, 12.0, 1.5), _ov(3, 11.0, 2.0), _ov(4, 40.0, 1.0), _ov(5, 11.0, 1.0))
    o = RankOverlap(rank=0, steps=steps, window=steps[0], hta_window=steps[0])
    assert [n for n, _ms, _why in o.outliers] == [4]  # the 40 ms step
    sp = spreads.rank_spreads(o)
    st = sp["step"]
    assert (st.steps, st.kept, st.left_out) == (5, 4, (4,))
    assert (st.low, st.high, st.kept_low, st.kept_high, st.median) == (10.0, 40.0, 10.0, 12.0, 11.0)
    mean = o.representative.step_ns / 1e6
    html = spreads.cell(mean, st)
    assert re.search(r"data-sort='11\.0'", html) and ">11.00<" in html
    assert "±9.1%" in html  # (12 - 10) / 2 / 11
    assert "over 4 steps (step #4 left out" in html and "median 11.00, range 10.00-40.00 over 5" in html
    ex = sp["exposed"]
    assert (ex.kept_low, ex.kept_high) == (1.0, 2.0)
    pct = spreads.cell(50.0, sp["overlap %"], nd=1, unit="%")
    assert "±0.0</span>" in pct  # every step hides half its comm: no spread, in points


def test_one_step_has_no_spread_and_missing_sorts_last():
    o = RankOverlap(rank=1, steps=(_ov(7, 10.0, 1.0),), window=_ov(7, 10.0, 1.0), hta_window=_ov(7, 10.0, 1.0))
    html = spreads.cell(10.0, spreads.rank_spreads(o)["step"])
    assert "±" not in html and "one analyzed step, no spread" in html
    assert spreads.cell(None, None) == "<td class='n' data-sort=''>-</td>"
    assert spreads.rank_spreads(RankOverlap(rank=2, steps=(), window=_ov(0, 1, 0), hta_window=_ov(0, 1, 0))) == {}


def test_compare_breakdown_of_many_ranks_is_a_few_areas(many, monkeypatch):
    """compare.html's two breakdowns past PLOT_RANKS_MAX ranks: three areas each, rank 0 on top, 17 ticks at most."""
    from outputs import figure_data

    from commprof.analysis.compare import compare
    from commprof.render import compare as compare_view
    from commprof.render.plot import figure

    seen: list[dict] = []
    real = figure.to_png

    def capture(plt, fig, *a, **k):
        seen.append(figure_data(fig))
        return real(plt, fig, *a, **k)

    monkeypatch.setattr(figure, "to_png", capture)
    pngs = compare_view.plots(compare(many, many))
    assert "compare_breakdown" in pngs
    axes = seen[0]["axes"]
    assert [ax["title"] for ax in axes] == ["before", "after"]
    assert all(ax["patches"] == [] and len(ax["collections"]) == 3 for ax in axes)
    ticks = axes[0]["yticklabels"]  # the axes share them
    assert ticks[0] == "rank 0" and ticks[1] == "rank 5" and len(ticks) <= 17


def test_lateness_of_many_ranks_names_the_slow_and_bands_the_rest(monkeypatch):
    """The monitor's lateness plot of 100 ranks: rank 7 (a slow range) and the latest ranks as lines, the other
    ranks one band with its median, a legend of a dozen entries, not a hundred."""
    from commprof.analysis.production.slowdown import RankLateness, Slowdown, SlowRange
    from commprof.render.families import monitor

    rng = np.random.default_rng(0)
    steps = np.arange(1, 31)
    series = []
    for r in range(100):
        late = rng.uniform(0, 2, steps.size)
        if r == 7:
            late[9:15] += 40.0
        series.append(RankLateness(r, steps, late))
    sd = Slowdown(0, {}, 5.0, tuple(series), (SlowRange(7, 10, 15, 40.0),), 300)

    class Mon:
        slowdown = sd

    got = _drawn(monkeypatch, scale, monitor.lateness_plot, Mon())
    ax = got["axes"][0]
    legend = ax["legend"]
    # rank 7 is the latest as well: the 5 latest ranks (rank 7 among them) are named
    assert "rank 7 (slow range)" in legend and "the other 95 ranks: range" in legend, legend
    assert len(legend) == 2 + 5 + 1  # band, median, the 5 named, threshold
    band = [c for c in ax["collections"] if c["type"] in ("PolyCollection", "FillBetweenPolyCollection")]
    assert len(band) == 1 and max(np.asarray(band[0]["paths"][0])[:, 1]) < 2.0  # rank 7's 40 ms not in it
    assert "100 ranks" in ax["title"]
