"""FSDP2 (fully_shard) over gloo in real processes: capture, the per-unit analysis, the replay's check on its own
run, plain torch.profiler traces, and compare."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import commprof
from commprof.analysis.fsdp.units import AG, BWD_AG, RS

pytestmark = pytest.mark.slow
SMALL = dict(layers=3, width=128, batch=16, steps=7, active=3)


@pytest.fixture(scope="module")
def fsdp_run(tmp_path_factory) -> Path:
    from commprof.workloads.fsdpdemo import launch

    out = tmp_path_factory.mktemp("fsdp")
    launch(out / "traced", nproc=2, result=str(out), prefetch=1, **SMALL)
    return out


def test_training_computes_bitwise_the_same_and_the_sidecar_describes_the_units(fsdp_run: Path, tmp_path: Path):
    import torch

    from commprof.workloads.fsdpdemo import launch

    (tmp_path / "p").mkdir()
    launch(tmp_path / "untraced", nproc=2, trace=False, result=str(tmp_path / "p"), prefetch=1, **SMALL)
    a, b = torch.load(fsdp_run / "params.pt"), torch.load(tmp_path / "p" / "params.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    side = json.loads((fsdp_run / "traced" / "rank0.commprof.json").read_text())["fsdp"]
    units = {u["name"]: u for u in side["units"]}
    assert set(units) == {"", "0", "1", "2"}
    u0 = units["0"]
    assert u0["numel"] == 128 * 128 + 128 and u0["unsharded_bytes"] == 4 * u0["numel"]
    assert u0["sharded_bytes"] == u0["unsharded_bytes"] // 2 and u0["reshard_after_forward"] is True
    assert units[""]["reshard_after_forward"] is False  # the root keeps its parameters
    assert u0["forward_prefetch"] == ["1"] and units["1"]["backward_prefetch"] == ["0"]
    assert side["mesh"] == {"shape": [2], "dim_names": [], "hsdp": False, "shard_ranks": [0, 1],
                            "replicate_ranks": None}


def test_every_unit_and_phase_is_found_and_the_replay_matches_its_own_run(fsdp_run: Path):
    rep = commprof.analyze(commprof.load(fsdp_run / "traced"))
    f = rep.fsdp
    assert f is not None and f.report.settings is not None
    units = {u.unit: u for u in f.report.units}
    assert list(units) == ["", "0", "1", "2"]
    for name in ("0", "1", "2"):
        u = units[name]
        assert {AG, BWD_AG, RS} <= set(u.phases)  # resharded after forward: gathered again in the backward
        assert u.phases[AG].bytes == 4 * (128 * 128 + 128)
        for _b, ms, exposed, _hid in u.phases.values():
            assert 0 <= exposed <= ms + 1e-6
        assert u.fwd_compute_ms > 0 and u.bwd_compute_ms > 0
    assert BWD_AG not in units[""].phases
    assert f.error_pct is not None and abs(f.error_pct) <= 20, f.error_pct
    assert {w.knob for w in f.whatifs} >= {"reshard_after_forward", "fsdp_prefetch", "fsdp"}
    from commprof.render.summary import summary
    d = summary(rep)["fsdp"]
    assert d["source"] == "sidecar" and len(d["units"]) == 4 and d["model_check"]["error_pct"] == round(f.error_pct, 1)


def test_a_plain_torch_profiler_trace_of_fsdp2():
    """tests/data/real/fsdp2_gloo_cpu, traced without commprof: units, sizes and reshard_after_forward from the
    trace's FSDP:: record functions and collectives alone."""
    from conftest import real
    rep = commprof.analyze(commprof.load(real("fsdp2_gloo_cpu")))
    f = rep.fsdp
    assert f is not None and f.report.settings is None and "trace alone" in f.report.notes[0]
    units = {u.unit: u for u in f.report.units}
    assert list(units) == ["", "0", "1", "2", "3"]
    assert all(units[n].reshard_after_forward and units[n].unsharded_bytes == 4 * (256 * 256 + 256)
               for n in ("0", "1", "2", "3"))
    assert any("FSDP holds at most" in x.text for x in rep.findings)
    # the CPU work of each resharding unit's backward unshard, measured from pre_backward and the backward prefetches
    # outside their waits: part of the unit's backward overhead, which reshard_after_forward=False saves
    for s in f.report.steps:
        for u in s.units:
            assert 0 <= u.bwd_unshard_ns <= u.bwd_overhead_ns and u.fwd_unshard_ns >= 0
        assert sum(u.bwd_unshard_ns for u in s.units if u.unit) > 0


def test_compare_two_fsdp_runs(fsdp_run: Path, tmp_path: Path):
    from commprof.analysis.compare import compare
    from commprof.workloads.fsdpdemo import launch

    launch(tmp_path / "after", nproc=2, reshard_after_forward=False, prefetch=1, **SMALL)
    before = commprof.analyze(commprof.load(fsdp_run / "traced"))
    c = compare(before, commprof.analyze(commprof.load(tmp_path / "after")))
    changed = {s.name: (s.before, s.after) for s in c.settings_changed}
    assert changed["reshard_after_forward"] == (True, False)
    units = {u.unit: u for u in c.fsdp_units}
    assert BWD_AG in units["1"].before and BWD_AG not in units["1"].after


def test_glibcs_fixed_thresholds_are_named_from_the_recorded_environment(fsdp_run: Path, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch):
    """A real FSDP2 job started with MALLOC_TRIM_THRESHOLD_ set (as Dask's LocalCluster leaves it): its sidecars
    record it and the report says what it costs FSDP2 on CPU; the module's own run, without it, says nothing."""
    from commprof.workloads.fsdpdemo import launch

    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    launch(tmp_path / "tuned", nproc=2, prefetch=1, **SMALL)
    side = json.loads((tmp_path / "tuned" / "rank0.commprof.json").read_text())
    assert side["env"]["MALLOC_TRIM_THRESHOLD_"] == "65536"
    tuned = commprof.analyze(commprof.load(tmp_path / "tuned"))
    assert any("MALLOC_TRIM_THRESHOLD_=65536" in f.text and f.severity == "medium" for f in tuned.findings)
    plain = commprof.analyze(commprof.load(fsdp_run / "traced"))
    assert not any("glibc's allocator" in f.text for f in plain.findings)
