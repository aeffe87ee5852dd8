"""report.html's embedded timeline data (commprof.render.timeline): every rank on one clock, collectives matched
across ranks, the budget that drops the shortest intervals, and the critical path overlay when a report has one."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import orjson
import synthetic

from commprof import analyze
from commprof.render.timeline import page as interactive
from commprof.render.timeline.data import Q_NS, timeline_data


def _undelta(a: list[int], w: int) -> np.ndarray:
    rows = np.array(a, dtype=np.int64).reshape(-1, w)
    rows[:, 0] = np.cumsum(rows[:, 0])
    return rows


def test_every_collective_is_drawn_and_matched_on_every_rank():
    rep = analyze(synthetic.big_run(8, steps=2, kernels=30, buckets=3))
    d = timeline_data(rep)
    assert [r["r"] for r in d["ranks"]] == list(range(8))
    for r, rt in zip(d["ranks"], rep.run.ranks, strict=True):
        cm = _undelta(r["cm"], 5)
        assert len(cm) == len(rt.collectives) == 6
        assert (cm[:, 3] >= 0).all()  # matched across ranks
    # a call ends at the same time on every rank once clocks are aligned (they were shifted by up to 3 ms)
    ends = {int(inst): set() for inst in range(len(d["insts"]))}
    for r in d["ranks"]:
        cm = _undelta(r["cm"], 5)
        for s, dur, _k, inst, _st in cm:
            ends[int(inst)].add(int(s + dur))
    assert all(max(v) - min(v) <= 1 for v in ends.values())
    assert all(last == 3 for _op, last in d["insts"])  # the slow rank arrives last
    assert d["dropped"]["intervals"] == 0
    # the report's own critical path (report.critical_path) is drawn: it runs through the slow rank's work, and
    # its segments follow one another in time within each step
    path = np.array(d["path"], dtype=np.int64).reshape(-1, 4)
    assert len(path) == len(rep.critical_path) > 0 and 3 in set(path[:, 0].tolist())
    assert all(d["names"][w] for w in path[:, 3].tolist())
    assert len(d["grid"]["ranks"]) == 8 and d["grid"]["steps"] == [0, 1]


def test_past_the_budget_the_shortest_intervals_go_and_the_page_says_so():
    rep = analyze(synthetic.big_run(4, steps=2, kernels=60, buckets=2))
    full = timeline_data(rep)
    n_full = sum(len(r[k]) // 2 for r in full["ranks"] for k in ("cp", "ex", "mc"))
    small = timeline_data(rep, budget=100)
    kept = sum(len(r[k]) // 2 for r in small["ranks"] for k in ("cp", "ex", "mc"))
    kept += sum(len(r.get("wt", [])) // 3 for r in small["ranks"])
    n_coll = sum(len(r["cm"]) // 5 for r in small["ranks"])
    assert n_coll == 16 and kept + n_coll == 100  # collectives always, then the longest others
    assert small["dropped"]["intervals"] > 0 and small["dropped"]["budget"] == 100
    kept_durs = [d for r in small["ranks"] for d in _undelta(r["cp"], 2)[:, 1]]
    assert min(kept_durs) * Q_NS >= small["dropped"]["below_us"] * 1000
    assert n_full > kept


def test_the_critical_path_is_drawn_when_the_report_has_one():
    rep = analyze(synthetic.big_run(4, steps=1, kernels=20, buckets=2))

    @dataclass
    class Seg:
        rank: int
        start_ns: int
        end_ns: int
        what: str

    rt = rep.run.ranks[3]
    shift = rt.base_time_ns + rep.cross.offsets_ns.get(3, 0)
    seg = Seg(3, int(rt.compute.start_ns[0]) + shift, int(rt.compute.end_ns[0]) + shift, "compute <late>")

    class WithPath:
        def __getattr__(self, name):
            return getattr(rep, name)

        critical_path = [seg, {"rank": 0, "start_ns": seg.end_ns, "end_ns": seg.end_ns + 10_000, "what": "all_reduce"}]

    d = timeline_data(WithPath())  # type: ignore[arg-type]
    rank, start, dur, what = d["path"][:4]
    assert rank == 3 and d["names"][what] == "compute <late>" and dur >= 1
    cp = _undelta(d["ranks"][3]["cp"], 2)
    assert start == cp[0, 0]  # on the same clock as the rank's own bars
    assert len(d["path"]) == 8
    # the page cannot be broken out of: '<' never appears raw in the embedded JSON
    assert "<" not in interactive._json(d) and orjson.loads(interactive._json(d))["names"][what] == "compute <late>"
