"""Large runs: the map step digests each rank and spills its interval lanes; the reduce step must give the same
report as a run kept in memory, and clean up after itself."""

from __future__ import annotations

import gc
import os
import pickle
from pathlib import Path

import pytest

import commprof
from commprof.analysis import perrank as digest
from commprof.engine import spill
from commprof.model import SpilledLane
from commprof.render import perfetto
from commprof.render.plot.plots import all_plots
from commprof.render.summary import summary
from conftest import real

SETS = ["megatron_tp8_a100", "dlrm_8gpu_v100", "h100-world1", "hta/tests/data/nccl_parser_config",
        "hta/tests/data/trace_filter", "hta/tests/data/cpu_only", "hta/tests/data/amd_trace"]


@pytest.fixture
def spill_everything(monkeypatch):
    monkeypatch.setattr(spill, "SPILL_MIN_INTERVALS", 0)  # the shared sets are small: spill every lane


@pytest.mark.parametrize("rel", SETS)
def test_spilled_run_reports_what_the_in_memory_run_reports(rel, spill_everything):
    path = real(rel)
    plain = commprof.load(path, spill=False)
    steps = sorted({s.number for rt in plain.ranks for s in rt.steps})
    chosen = tuple(steps[1:3]) if len(steps) > 2 else None
    # all steps; a restriction the map step knew; a restriction it did not (recomputed from the spilled lanes)
    for analyze_steps, map_steps in ((None, None), (chosen, chosen), (chosen, None)):
        run = commprof.load(path, spill=True, steps=map_steps)
        assert all(spill.is_spilled(rt, run.digests.get(rt.rank)) for rt in run.ranks)
        assert all(isinstance(rt.compute, SpilledLane) for rt in run.ranks if len(rt.compute))
        a, b = commprof.analyze(plain, steps=analyze_steps), commprof.analyze(run, steps=analyze_steps)
        assert summary(b) == summary(a)
        assert perfetto.render(b) == perfetto.render(a)
    assert all_plots(b) == all_plots(a)  # the timeline reads one step of each rank's spilled lanes


def test_large_runs_spill_by_default_and_the_folder_goes_with_the_run():
    path = real("hta/tests/data/df_index_resolver")  # 54 MB of JSON: above the spill threshold
    run = commprof.load(path)
    rt = run.ranks[0]
    d = run.digests[rt.rank]
    assert isinstance(rt.compute, SpilledLane) and d.steps is None
    folder = Path(rt.compute.data.path).parent
    assert folder.is_dir() and folder.name.startswith("commprof-lanes-")
    # the parsed rank as the map step hands it over: its 17,350 compute kernels stay in the file
    full = commprof.load(path, spill=False).ranks[0]
    lanes = len(pickle.dumps(full.compute))  # what the map step would hand over in memory without the spill
    assert len(rt.compute) == 17350 and len(pickle.dumps(rt)) < len(pickle.dumps(full)) - 0.9 * lanes
    del run, rt, d
    gc.collect()
    assert not folder.exists()


def test_small_runs_keep_their_lanes_in_memory():
    run = commprof.load(real("megatron_tp8_a100"), workers=1, spill=None)  # 30 MB in 8 files: spilled, but
    assert all(not isinstance(rt.compute, SpilledLane) for rt in run.ranks)  # lanes under 4096 stay in memory
    assert all(rt.rank in run.digests for rt in run.ranks)
    small = commprof.load(real("dlrm_8gpu_v100"))  # 7 MB: below the threshold, loaded as it always was
    assert not small.digests and not any(spill.is_spilled(rt) for rt in small.ranks)


def test_a_folder_that_cannot_be_written_keeps_the_lanes_in_memory(spill_everything, monkeypatch):
    def full(*_a, **_k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(spill, "_save", full)
    path = real("hta/tests/data/nccl_parser_config")
    run = commprof.load(path, spill=True, workers=1)
    assert not any(spill.is_spilled(rt, run.digests.get(rt.rank)) for rt in run.ranks)
    assert any("could not spill its intervals" in w and "No space left" in w for w in run.ranks[0].warnings)
    assert summary(commprof.analyze(run))["ranks"] == summary(commprof.analyze(commprof.load(path)))["ranks"]


def test_spill_folder_is_removed_when_loading_fails(tmp_path, spill_everything):
    import tempfile

    before = {p for p in os.listdir(tempfile.gettempdir()) if p.startswith("commprof-lanes-")}
    (tmp_path / "rank0.json").write_text("{not json")
    with pytest.raises(commprof.InputError):
        commprof.load(tmp_path, spill=True)
    gc.collect()
    after = {p for p in os.listdir(tempfile.gettempdir()) if p.startswith("commprof-lanes-")}
    assert after <= before


def test_step_selections_travel_compactly_and_match_by_their_set(spill_everything):
    from commprof.__main__ import parse_steps

    assert digest.steps_key([5, 3, 4, 4]) == range(3, 6) == digest.steps_key((3, 4, 5))
    assert digest.steps_key([7, 3]) == (3, 7) and digest.steps_key(None) is None
    path = real("h100-world1")
    steps = parse_steps("3:")  # open-ended: a million step numbers
    run = commprof.load(path, spill=True, steps=steps)
    rt = run.ranks[0]
    assert len(pickle.dumps(run.digests[0].steps)) < 100  # sent to every worker and back as a range
    d = run.digests[0]
    assert digest.results_for(rt, tuple(steps), digest.steps_key(steps), d) is d.results  # used, not redone
    plain = commprof.load(path, spill=False)
    assert summary(commprof.analyze(run, steps=steps)) == summary(commprof.analyze(plain, steps=steps))


def test_no_writable_temp_folder_keeps_the_lanes_in_memory(tmp_path, monkeypatch):
    import tempfile

    ro = tmp_path / "ro"
    ro.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(ro / "missing"))  # mkdtemp fails: no such folder
    path = real("hta/tests/data/nccl_parser_config")
    run = commprof.load(path, spill=True)
    assert not any(spill.is_spilled(rt) for rt in run.ranks) and not run.digests
    assert any("could not make a folder for the ranks' intervals" in w for w in run.warnings)
    assert summary(commprof.analyze(run))["ranks"] == summary(commprof.analyze(commprof.load(path)))["ranks"]
