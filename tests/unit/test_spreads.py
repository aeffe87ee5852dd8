"""Every per-rank headline figure with its spread over the analyzed steps: summary.json's ``spread``, the terminal's
``±`` row under each rank and report.html's per-rank cells, all from ``render/spreads.py``'s ``rank_spreads``, on
hand-built runs whose every step's figures are known."""

from __future__ import annotations

import re

import pytest
from builders import collective, lane, rank_trace, run

import commprof
from commprof.analysis.overlap import Overlap, RankOverlap
from commprof.render import html, spreads, text
from commprof.render.summary import summary

MS = 1_000_000
# per step: (step, compute, comm, overlapped) ms; compute starts the step, comm starts ``overlapped`` before the
# compute ends, the rest of the step is idle.  Step 4 of rank 0 is a one-off stall (40 ms: 3.6x the others' median)
# with a long compute: the mean is over steps 1, 2, 3, 5; the median and the range over all five.
RANK0 = ((10.0, 6.0, 3.0, 1.0), (12.0, 7.0, 4.0, 1.0), (11.0, 6.5, 3.5, 2.0), (40.0, 20.0, 3.0, 1.0),
         (11.0, 7.0, 3.0, 1.0))
RANK1 = ((10.0, 6.0, 3.0, 1.0), (10.5, 6.2, 3.2, 1.5), (11.0, 6.5, 3.5, 2.0), (10.0, 6.0, 3.0, 1.0),
         (11.5, 7.0, 3.0, 1.0))


def _rank(rank: int, figures: tuple[tuple[float, float, float, float], ...]):
    steps, comp, colls, t = [], [], [], 0
    for n, (step, compute, comm, over) in enumerate(figures, start=1):
        steps.append((n, t, t + int(step * MS)))
        comp.append((t, t + int(compute * MS)))
        start = t + int((compute - over) * MS)
        colls.append(collective(start, start + int(comm * MS), step=n, seq=n))
        t += int(step * MS)
    return rank_trace(rank, steps=steps, compute=lane(comp, list(range(1, len(figures) + 1))), collectives=colls)


def _expected(figures, kept_steps):
    """Each figure of each step, as the row's keys: step, compute, comm, overlapped, exposed, other, overlap %."""
    rows = []
    for step, compute, comm, over in figures:
        rows.append({"step_ms": step, "compute_ms": compute, "comm_ms": comm, "overlapped_ms": over,
                     "exposed_comm_ms": comm - over, "other_ms": step - (compute + comm - over),
                     "overlap_pct": 100 * over / comm})
    kept = [rows[i] for i in kept_steps]
    return rows, kept


@pytest.fixture(scope="module")
def rep():
    return commprof.analyze(run(_rank(0, RANK0), _rank(1, RANK1)))


def test_summary_gives_each_figure_its_median_range_and_kept_range(rep):
    s = summary(rep)
    r0 = s["ranks"][0]
    assert [x["step"] for x in r0["step_spread"]["outliers"]] == [4]  # the stall is named and left out
    sp = r0["spread"]
    assert list(sp) == ["step_ms", "compute_ms", "comm_ms", "overlapped_ms", "exposed_comm_ms", "other_ms",
                        "overlap_pct"]  # the row's own keys: spread[k] is the spread of r0[k]
    assert sp["step_ms"] == {"median": 11.0, "min": 10.0, "max": 40.0, "kept_min": 10.0, "kept_max": 12.0,
                             "steps": 5, "kept": 4}
    assert sp["compute_ms"] == {"median": 7.0, "min": 6.0, "max": 20.0, "kept_min": 6.0, "kept_max": 7.0,
                                "steps": 5, "kept": 4}
    rows, kept = _expected(RANK0, (0, 1, 2, 4))
    for key, got in sp.items():
        vals = [x[key] for x in rows]
        kvals = [x[key] for x in kept]
        nd = 2 if key == "overlap_pct" else 3
        assert got["median"] == pytest.approx(sorted(vals)[2], abs=10 ** -nd), key
        assert (got["min"], got["max"]) == pytest.approx((min(vals), max(vals)), abs=10 ** -nd), key
        assert (got["kept_min"], got["kept_max"]) == pytest.approx((min(kvals), max(kvals)), abs=10 ** -nd), key
        assert (got["steps"], got["kept"]) == (5, 4)
        if key != "overlap_pct":  # the headline is the mean of the kept steps, inside their range
            assert r0[key] == pytest.approx(sum(kvals) / 4, abs=2e-3), key
            assert got["kept_min"] - 1e-3 <= r0[key] <= got["kept_max"] + 1e-3
    # one definition per quantity: the step's spread is step_spread's
    st = r0["step_spread"]
    assert (sp["step_ms"]["median"], sp["step_ms"]["min"], sp["step_ms"]["max"]) == (
        st["median_ms"], st["min_ms"], st["max_ms"])
    r1 = s["ranks"][1]  # no outlier: every step kept, the kept range is the range
    assert r1["step_spread"]["outliers"] == []
    assert all(v["kept"] == v["steps"] == 5 and (v["kept_min"], v["kept_max"]) == (v["min"], v["max"])
               for v in r1["spread"].values())


def _pm(value: float, lo: float, hi: float, pct: bool) -> str:
    """The ± the docs define, from summary.json's own numbers: half the kept range, in % of the figure or in points."""
    if pct:
        return f"±{(hi - lo) / 2:.1f}"
    x = 50 * (hi - lo) / value
    return f"±{x:.1f}%" if x < 99.95 else f"±{x:.0f}%"


def test_text_json_and_html_give_one_rank_the_same_figures_and_spreads(rep):
    s = summary(rep)
    r0 = s["ranks"][0]
    keys = list(spreads.KEYS.values())
    want = [_pm(r0[k], r0["spread"][k]["kept_min"], r0["spread"][k]["kept_max"], k == "overlap_pct")
            if r0[k] else "" for k in keys]
    assert want[0] == "±9.1%"  # (12 - 10) / 2 of the 11 ms mean
    figs = [f"{r0[k]:.{1 if k == 'overlap_pct' else 2}f}" for k in keys]

    out = text.render(rep)
    lines = out.splitlines()
    i = next(i for i, ln in enumerate(lines) if re.match(r"│\s+0 │", ln))
    cells = [c.strip() for c in lines[i].strip("│").split("│")]
    assert cells[1:8] == figs
    under = [c.strip() for c in lines[i + 1].strip("│").split("│")]
    assert under[0] == "" and under[1:8] == want and under[8:] == ["", ""]
    assert "±: half the range of the steps each mean is over" in out

    page = html.render(rep, plots={})
    table = page[page.index("data-commprof='table-ranks'"):]
    row = re.search(r"<tr><td class='n'>0</td>(.*?)</tr>", table).group(1)
    tds = re.findall(r"<td class='n' data-sort='([^']*)'[^>]*>([^<]*)(?:<span class='spread'> ([^<]*)</span>)?</td>",
                     row)[:7]
    assert [t[1] for t in tds] == figs
    assert [t[2] for t in tds] == want
    assert [float(t[0]) for t in tds] == [r0[k] for k in keys]  # sorted by the figure itself


def test_one_step_has_no_spread_row_and_no_steps_no_spread():
    one = commprof.analyze(run(_rank(0, RANK0[:1]), _rank(1, RANK1[:1])))
    s = summary(one)
    sp = s["ranks"][0]["spread"]
    assert all(v["steps"] == v["kept"] == 1 and v["min"] == v["max"] == v["median"] for v in sp.values())
    out = text.render(one)
    assert "±" not in out.split("Per rank", 1)[1].split("Collectives", 1)[0]  # nothing to spread over
    empty = Overlap(step=0, step_ns=1, compute_ns=0, comm_ns=0, overlapped_ns=0, comm_bytes=0)
    assert spreads.spread_json(RankOverlap(rank=0, steps=(), window=empty, hta_window=empty)) is None


def test_a_spread_past_the_figure_itself_keeps_the_column_narrow():
    sp = spreads.CellSpread(steps=4, kept=4, median=1.0, low=0.5, high=3.5, kept_low=0.5, kept_high=3.5, left_out=())
    assert spreads.beside(1.0, sp) == "±150%"  # no decimal from 100%
    assert spreads.beside(20.0, sp) == "±7.5%"
    assert spreads.beside(0.0, sp) == ""  # a zero figure has no relative spread
    assert spreads.beside(40.0, sp, unit="%") == "±1.5"  # in points
    one = spreads.CellSpread(steps=3, kept=1, median=1.0, low=1.0, high=9.0, kept_low=1.0, kept_high=1.0,
                             left_out=(2, 3))
    assert spreads.beside(1.0, one) == "" and spreads.beside(1.0, one, unit="%") == ""


def test_past_the_rows_the_terminal_shows_each_shown_rank_keeps_its_spread_row():
    from commprof.render.tables import MAX_ROWS

    n = MAX_ROWS * 2 + 3
    many = commprof.analyze(run(*(_rank(r, RANK1[:3]) for r in range(n))))
    s = summary(many)
    assert len(s["ranks"]) == n and all(r["spread"]["step_ms"]["steps"] == 3 for r in s["ranks"])  # JSON: every rank
    table = text.render(many).split("Per rank", 1)[1].split("Collectives", 1)[0]
    rows = [ln for ln in table.splitlines() if re.match(r"│\s+\d+ │", ln)]
    pms = [ln for ln in table.splitlines() if re.match(r"│\s+│\s+±", ln)]
    assert len(rows) == len(pms) == MAX_ROWS * 2  # the rows it showed before, each with its ± row
    assert f"… {n - MAX_ROWS * 2} more ranks in summary.json" in table


def test_the_step_advice_is_measured_against_is_said_where_it_is_not_the_step_outside_the_profiler():
    """The step as it is now (what advice is measured against) is in summary.json with where it comes from; where a
    rank's is not the median outside the profiler (too few steps there: a pipeline run of 8 steps profiled 2-5 read
    "step time outside the profiler 17.38 ms" beside advice against "the current step (21.8 ms)"), the text says
    which it is."""
    from dataclasses import replace

    from commprof.analysis.steptimes import GIVEN, OUTSIDE, PROFILED
    from conftest import ROOT

    rep = commprof.analyze(commprof.load(ROOT / "traces" / "example"))
    ranks = summary(rep)["ranks"]
    assert [r["step_now_basis"] for r in ranks] == [OUTSIDE] * len(ranks)
    assert all(r["step_now_ms"] == r["step_ms_unprofiled"] for r in ranks)
    assert "which advice is measured against" not in text.render(rep)
    # rank 1's step now the mean profiled step (too few steps outside the profiler), rank 0's as timed
    mean1 = summary(rep)["ranks"][1]["mean"]["step_ms"]
    profiled = replace(rep, step_now_basis={0: OUTSIDE, 1: PROFILED},
                       step_now_ms={0: rep.step_now_ms[0], 1: mean1})
    words = (f"the step as it is now, which advice is measured against: rank 1 {mean1:.2f} ms: the mean profiled "
             "step (too few steps outside the profiler to stand for it)")
    assert words in re.sub(r"\s+", " ", text.render(profiled))
    assert words in html.render(profiled, plots={}) and "measured against" not in html.render(rep, plots={})
    # the step given (step_ms) where it is the figure shown as outside the profiler: nothing to say; a step now
    # without a slow episode's steps, where it differs from the median of them all: said
    given = replace(rep, step_now_basis={r: GIVEN for r in rep.step_now_basis})
    assert "measured against" not in text.render(given)
    episode = replace(rep, step_now_ms={0: rep.step_now_ms[0] - 0.5, 1: rep.step_now_ms[1]})
    said = re.sub(r"\s+", " ", text.render(episode))
    assert "without the slow steps left out of the run's noise (a slow episode's" in said


def test_a_step_of_another_kind_is_no_outlier_of_the_headline():
    """Traced one micro-batch per step with gradient accumulation over 4: the step that all-reduces (2.2x the
    others) is the run's rhythm, not a stall: it stays in the mean; a step that moved about the usual bytes 2.5x
    slower than the others is a stall, left out."""
    def ov(step: int, ms: float, nbytes: int) -> Overlap:
        return Overlap(step=step, step_ns=int(ms * 1e6), compute_ns=int(ms * 1e6), comm_ns=0, overlapped_ns=0,
                       comm_bytes=nbytes)

    acc = tuple(ov(n, 90.0 if n % 4 == 3 else 40.0 + (n % 3), 25_000_000 if n % 4 == 3 else 0) for n in range(2, 10))
    o = RankOverlap(rank=0, steps=acc, window=acc[0], hta_window=acc[0])
    assert o.outliers == () and len(o.kept) == 8
    # bytes that vary a little from step to step (experts' all-to-alls): a stall is still one
    stall = tuple(ov(n, 100.0 if n == 5 else 40.0 + (n % 3), 25_000_000 + 1_000_000 * (n % 3)) for n in range(2, 10))
    o = RankOverlap(rank=0, steps=stall, window=stall[0], hta_window=stall[0])
    assert [n for n, _ms, _why in o.outliers] == [5]
    # accumulation over 2 (bytes alternate): a stall among the steps that moved nothing is still one
    alt = tuple(ov(n, 200.0 if n == 6 else 90.0 if n % 2 else 40.0 + (n % 3), 25_000_000 if n % 2 else 0)
                for n in range(2, 18))
    o = RankOverlap(rank=0, steps=alt, window=alt[0], hta_window=alt[0])
    assert [n for n, _ms, _why in o.outliers] == [6]
    # accumulation over 4: the sync steps do not use up the quarter a stall of the usual kind is judged by
    acc4 = tuple(ov(n, 110.0 if n == 5 else 90.0 if n % 4 == 3 else 40.0 + (n % 3), 25_000_000 if n % 4 == 3 else 0)
                 for n in range(2, 18))
    o = RankOverlap(rank=0, steps=acc4, window=acc4[0], hta_window=acc4[0])
    assert [n for n, _ms, _why in o.outliers] == [5]
    # a step that moved less than the others (an evaluation, no backward) can still be one
    ev = tuple(ov(n, 300.0 if n == 7 else 40.0 + (n % 3), 0 if n == 7 else 25_000_000) for n in range(2, 14))
    o = RankOverlap(rank=0, steps=ev, window=ev[0], hta_window=ev[0])
    assert [n for n, _ms, _why in o.outliers] == [7]
