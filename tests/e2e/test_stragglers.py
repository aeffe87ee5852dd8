"""Own multi-rank gloo runs with an injected straggler (rank 1 sleeps before every backward pass)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

import commprof
from commprof.analysis.crossrank.chance import weak
from commprof.workloads.demo import launch

pytestmark = pytest.mark.slow

SLEEP_MS = 40.0


@pytest.fixture(scope="module")
def straggler_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("straggler")
    launch(out, nproc=2, steps=7, width=256, layers=4, bucket_cap_mb=0.25, batch=32, slow_rank=1, slow_ms=SLEEP_MS)
    return out


def _shift_rank(src: Path, dst: Path, rank: int, seconds: float) -> None:
    """Copy a run as if one rank had run on another host whose clock is ``seconds`` ahead (its trace, named for
    that host, and its sidecar): clocks of one host agree, so commprof refuses a shift between ranks of one host."""
    dst.mkdir()
    for p in src.iterdir():
        if p.is_dir():
            continue
        data = p.read_bytes()
        if p.name == f"rank{rank}.pt.trace.json.gz":
            doc = json.loads(gzip.decompress(data))
            for e in doc["traceEvents"]:
                if isinstance(e.get("ts"), (int, float)):
                    e["ts"] += seconds * 1e6
            if "host_name" in doc:
                doc["host_name"] = f"{doc['host_name']}-other-host"
            data = gzip.compress(json.dumps(doc).encode())
        elif p.name == f"rank{rank}.commprof.json":
            sc = json.loads(data)
            for b in sc["buckets"]:
                for k in ("hook_unix_ns", "launch_unix_ns", "ready_unix_ns"):
                    if k in b:
                        b[k] += int(seconds * 1e9)
            for s in sc["steps"]:
                s["start_unix_ns"] += int(seconds * 1e9)
                s["end_unix_ns"] += int(seconds * 1e9)
            sc["param_ready"] = {k: {n: t + int(seconds * 1e9) for n, t in v.items()}
                                 for k, v in sc["param_ready"].items()}
            data = json.dumps(sc).encode()
        (dst / p.name).write_bytes(data)


def test_report_names_the_straggler_and_its_lateness(straggler_run: Path):
    rep = commprof.analyze(commprof.load(straggler_run))
    top = rep.cross.stragglers[0]
    assert top.rank == 1
    assert top.late_count >= 0.8 * top.instances
    assert top.mean_late_ms == pytest.approx(SLEEP_MS, rel=0.2)
    assert top.idle_ms > 0.7 * top.mean_late_ms  # a sleep: neither compute nor communication
    # rank 0 waits for rank 1 about as long as rank 1 slept, every step
    assert rep.cross.wait_ms_per_step[0] == pytest.approx(SLEEP_MS, rel=0.3)  # the mean over steps, as caused
    assert rep.cross.wait_ms_per_step[1] < 0.2 * SLEEP_MS
    assert top.caused_wait_ms == pytest.approx(SLEEP_MS, rel=0.3)  # one sleep per step, rank 0 waits it out
    # the report leads with the root cause: rank 1, idle before collectives, about one sleep per step to gain
    rc = rep.root_cause
    assert rc is not None and rc.rank == 1 and rc.what == "idle before collectives"
    assert rc.predicted_gain_ms == pytest.approx(SLEEP_MS, rel=0.35)
    assert rep.findings[0].text.startswith(f"Rank 1 {'may hold' if weak(rc) else 'holds'} the job back")
    # it slept: its work is its peer's (the same products from the same shapes), and no sentence says otherwise
    assert rc.work is not None and rc.work.no_more and rc.work.ratio == pytest.approx(1.0, abs=1e-9)
    assert "more work" not in rep.findings[0].text


def test_a_rank_given_a_larger_batch_is_told_to_have_more_work(tmp_path: Path):
    """Rank 0 trains on batches of 128 where rank 1 gets 64 (uneven shards): every matrix product of the step
    scales with the batch, so its recorded shapes give it exactly twice its peer's matrix work, and the root cause
    (or, where this run's jitter hides it, the lead of "no single rank") says it was given more work."""
    launch(tmp_path, nproc=2, steps=7, width=1024, layers=4, bucket_cap_mb=4.0, batch=64, rank_batch={0: 128})
    rep = commprof.analyze(commprof.load(tmp_path))
    rc = rep.root_cause
    assert rc is not None and rc.work is not None, rep.findings[0].text
    assert rc.work.ratio == pytest.approx(2.0, rel=1e-6) and rc.work.steps == 3
    assert rc.work.kind == "data" and rc.work.peers == 1
    text = rep.findings[0].text
    if rc.ranks:  # named: its compute (or its gaps) beside twice the work
        assert rc.ranks == (0,) and "given more work than its DP peers" in text, text
    else:  # this run's jitter hid it: the lead
        assert rc.spread[0][0] == 0 and "A lead: rank 0, with " in text, text  # its share of the path
        assert "of the path, was given more work than its DP peers" in text, text
    assert "its matrix products come to" in text and "(median; 2.00x" in text, text
    from commprof.render.summary import summary

    work = summary(rep)["root_cause"]["work"]
    assert work["ratio"] == pytest.approx(2.0) and work["gflop_per_step"] == pytest.approx(2 * work[
        "peers_gflop_per_step"], rel=1e-3)


def test_clock_shifted_by_seconds_gives_the_same_answers(straggler_run: Path, tmp_path: Path):
    shifted = tmp_path / "shifted"
    _shift_rank(straggler_run, shifted, rank=1, seconds=5.0)
    a = commprof.analyze(commprof.load(straggler_run))
    b = commprof.analyze(commprof.load(shifted))
    assert b.cross.offsets_ns[1] - a.cross.offsets_ns[1] == pytest.approx(-5e9, abs=1e3)
    assert [(s.rank, s.late_count) for s in a.cross.stragglers] == [(s.rank, s.late_count) for s in b.cross.stragglers]
    assert a.cross.stragglers[0].mean_late_ms == pytest.approx(b.cross.stragglers[0].mean_late_ms, abs=1e-3)
    assert a.cross.wait_ms_per_step == pytest.approx(b.cross.wait_ms_per_step, abs=1e-3)
    assert a.root_cause is not None and b.root_cause is not None and a.root_cause.rank == b.root_cause.rank == 1
    assert a.root_cause.predicted_gain_ms == pytest.approx(b.root_cause.predicted_gain_ms, abs=1e-3)
    for oa, ob in zip(a.overlaps, b.overlaps, strict=True):
        assert oa.window.overlap_pct == pytest.approx(ob.window.overlap_pct)
        assert [s.exposed_ns for s in oa.steps] == [s.exposed_ns for s in ob.steps]
    assert [(r.index, r.comm_ns, r.exposed_ns) for r in a.bucket_rows] == \
        [(r.index, r.comm_ns, r.exposed_ns) for r in b.bucket_rows]


def test_spilled_lanes_give_the_same_straggler_split(straggler_run: Path, monkeypatch):
    """The straggler split reads the late rank's intervals inside its late windows only: from the map step's
    spilled, memory-mapped unions it must give what the in-memory lanes give."""
    from commprof.engine import spill
    from commprof.render.summary import summary

    monkeypatch.setattr(spill, "SPILL_MIN_INTERVALS", 0)  # this small run's lanes are spilled too
    plain = commprof.analyze(commprof.load(straggler_run, spill=False))
    run = commprof.load(straggler_run, spill=True)
    assert all(spill.is_spilled(rt, run.digests.get(rt.rank)) for rt in run.ranks)
    spilled = commprof.analyze(run)
    assert spilled.cross.stragglers == plain.cross.stragglers and spilled.cross.stragglers[0].idle_ms > 0
    assert summary(spilled) == summary(plain)


def test_a_one_off_stall_outside_the_profiler_is_named_not_noise(tmp_path: Path):
    """Rank 1 sleeps 1.5 s once, at step 8 of 12 (the profiler recorded steps 2-4): both ranks' step 8 lasts ~1.5 s
    (rank 0 waits in its collectives).  The run's noise leaves that step out and names it, instead of reading a
    step variation of hundreds of % that would call the run disturbed and withhold every prediction."""
    out = tmp_path / "stall"
    launch(out, nproc=2, steps=12, width=512, layers=4, bucket_cap_mb=1, batch=64, slow_rank=1, slow_ms=1500.0,
           stall_step=8)
    rep = commprof.analyze(commprof.load(out))
    nz = rep.noise
    assert nz is not None and nz.steps_unprofiled >= 5
    # only the stall, once, with the ranks it showed on (rank 0 waited for rank 1): the other steps stay in
    assert [(s.step, s.profiled) for s in nz.left_out] == [(8, False)], nz.left_out
    assert 1 in nz.left_out[0].ranks and nz.left_out[0].high_ms > 1000.0
    # what remains is the steps' own variation: tens of % at most on a busy 2-core host, not the stall's ~250%
    assert nz.unprofiled_pct is not None and nz.unprofiled_pct < 60.0, nz.describe()
    assert any("step 8 on rank" in w for w in rep.warnings), rep.warnings


def test_slow_steps_after_the_profiler_are_an_episode_named_not_noise(tmp_path: Path):
    """Rank 1 sleeps 80 ms in steps 9-11 of 16, after the profiler (it recorded steps 2-4): three slow steps in a row
    on both ranks (rank 0 waits for rank 1), which no one-off stall rule leaves out.  The run's noise leaves them out
    and names them as an episode the trace did not record, instead of a variation of ~100% that would call the run
    disturbed and withhold its advice."""
    out = tmp_path / "episode"
    launch(out, nproc=2, steps=16, width=512, layers=4, bucket_cap_mb=1, batch=64, slow_ms=80.0,
           slow_plan={1: [9, 11]})
    rep = commprof.analyze(commprof.load(out))
    nz = rep.noise
    assert nz is not None and [e.steps for e in nz.episodes] == [(9, 10, 11)], nz.describe()
    assert nz.episodes[0].low_ms > 80.0 and nz.episodes[0].factor > 2.0
    assert not [s for s in nz.left_out if s.step in (9, 10, 11)]  # not three one-off stalls
    assert nz.unprofiled_pct is not None and nz.unprofiled_pct < 60.0, nz.describe()
    assert any("steps 9-11 (" in w and "did not record" in w for w in rep.warnings), rep.warnings


def test_a_straggler_started_with_an_environment_of_its_own_says_so(tmp_path: Path):
    """3 real ranks, rank 2 sleeping before every backward pass and started with MALLOC_ARENA_MAX=2 where its two
    peers were not (a launcher that set one node apart): the root cause names rank 2 and says its environment
    differs from both peers', from the sidecars' records; the variables all three share are not mentioned."""
    launch(tmp_path, nproc=3, steps=7, width=256, layers=4, bucket_cap_mb=0.25, batch=32, slow_rank=2,
           slow_ms=SLEEP_MS, rank_env={2: {"MALLOC_ARENA_MAX": "2"}})
    rep = commprof.analyze(commprof.load(tmp_path))
    rc = rep.root_cause
    assert rc is not None and rc.rank == 2, rep.findings[0].text
    text = rep.findings[0].text
    assert "Its environment differs from all 2 peers': MALLOC_ARENA_MAX=2 (theirs unset)" in text
    assert "OMP_NUM_THREADS" not in text  # set alike on every rank by the launcher
    from commprof.render.summary import summary

    rows = {r["rank"]: r for r in summary(rep)["ranks"]}  # summary.json: each rank's record
    assert rows[2]["env"]["MALLOC_ARENA_MAX"] == "2" and "MALLOC_ARENA_MAX" not in rows[0]["env"]


def test_a_rank_slow_from_mid_run_is_named_in_its_regime(tmp_path: Path):
    """Rank 1 sleeps 30 ms before every backward pass from step 8 on; the profiler records steps 2-13.  Over all
    twelve steps the blend hid it (a median gain of the two regimes, "compute"); judged in its regime it is named
    with the sleep as its gain, the change at its step, and the slow steps are no "one-off stalls"."""
    out = tmp_path / "regime"
    sleep_ms = 30.0
    launch(out, nproc=2, steps=16, width=256, layers=4, bucket_cap_mb=0.25, batch=32, slow_rank=1, slow_ms=sleep_ms,
           slow_from=8, wait=0, warmup=2, active=12)
    rep = commprof.analyze(commprof.load(out))
    assert rep.critical is not None
    c = rep.critical.cause
    assert c.ranks == (1,) and c.what == "idle before collectives", c.text
    assert c.change is not None and c.change_steps is not None and abs(c.change_steps[0] - 8) <= 1, c.text
    assert c.regime is not None and c.regime[-1] == 13 and abs(c.regime[0] - 8) <= 1
    assert 0.5 * sleep_ms < (c.predicted_gain_ms or 0) < 1.6 * sleep_ms, c.text
    assert c.text.startswith(f"From step {c.change_steps[0]} on (")
    assert all(not o.outliers for o in rep.overlaps), [o.outliers for o in rep.overlaps]
