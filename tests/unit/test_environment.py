"""The environment variables a sidecar records (``commprof.capture.environment``), how the reader reads them, and
compare's account of two runs whose environments differ."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from commprof.analysis.compare import SettingChange, unseen
from commprof.capture.environment import MAX_VALUE_CHARS, performance_env
from commprof.reader.sidecar import env_record as _env
from conftest import ROOT, real


def test_only_the_variables_that_change_how_fast_a_job_runs_are_recorded():
    env = {"MALLOC_TRIM_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1", "NCCL_ALGO": "Ring",
           "LD_PRELOAD": "libjemalloc.so", "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True",
           "GLOO_SOCKET_IFNAME": "veth0", "PATH": "/usr/bin", "HOME": "/root", "AWS_SECRET_ACCESS_KEY": "x",
           "MY_NCCL_ALGO": "Tree", "NCCL_DEBUG_FILE": "n" * 1000}
    got = performance_env(env)
    assert set(got) == {"MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS", "NCCL_ALGO", "LD_PRELOAD",
                        "PYTORCH_CUDA_ALLOC_CONF", "GLOO_SOCKET_IFNAME", "NCCL_DEBUG_FILE"}
    assert list(got) == sorted(got) and len(got["NCCL_DEBUG_FILE"]) == MAX_VALUE_CHARS


def test_the_reader_tells_not_recorded_from_recorded_empty():
    assert _env(None) is None and _env([1]) is None and _env({}) == {}
    assert _env({"OMP_NUM_THREADS": 1, "X": ["bad"]}) == {"OMP_NUM_THREADS": "1"}


def test_an_environment_change_is_never_a_setting_without_visible_effect():
    """unseen() names settings that changed nothing the runs can see; with the environment changed too, the
    difference in step time may be the environment's, so it names none (it returns before reading the runs)."""
    changes = [SettingChange("bucket_cap_mb", 25.0, 1.0), SettingChange("env:MALLOC_TRIM_THRESHOLD_", None, "65536")]
    assert unseen(None, None, changes) == ()  # type: ignore[arg-type]


def _with_env(src: Path, dst: Path, env: dict[str, str] | None) -> Path:
    shutil.copytree(src, dst)
    for f in dst.glob("*.commprof.json"):
        doc = json.loads(f.read_text())
        if env is not None:
            doc["env"] = env
        f.write_text(json.dumps(doc))
    return dst


def test_compare_names_the_variables_set_differently(tmp_path: Path):
    """Two real runs (netns_500mbit_amd_epyc, recorded before sidecars held the environment), given environments:
    the one variable set differently is a changed setting and a note; without a record on one side, nothing."""
    root = real("netns_500mbit_amd_epyc")
    before = _with_env(root / "traced_default_bucket25", tmp_path / "b", {"OMP_NUM_THREADS": "1"})
    after = _with_env(root / "traced_fp16_bucket4", tmp_path / "a",
                      {"OMP_NUM_THREADS": "1", "MALLOC_TRIM_THRESHOLD_": "65536"})
    old = _with_env(root / "traced_fp16_bucket4", tmp_path / "old", None)
    for side, out in ((after, "o1"), (old, "o2")):
        res = subprocess.run([sys.executable, "-m", "commprof", "compare", str(before), str(side), "-o",
                              str(tmp_path / out)], capture_output=True, text=True, cwd=ROOT, timeout=600)
        assert res.returncode == 0, res.stderr
        (tmp_path / f"{out}.txt").write_text(res.stdout)
    d = json.loads((tmp_path / "o1" / "compare.json").read_text())
    env = [s for s in d["settings_changed"] if s["name"].startswith("env:")]
    assert env == [{"name": "env:MALLOC_TRIM_THRESHOLD_", "before": None, "after": "65536"}]
    assert any("the environment differs (MALLOC_TRIM_THRESHOLD_ unset -> 65536)" in n for n in d["notes"])
    text = (tmp_path / "o1.txt").read_text()
    assert "env:MALLOC_TRIM_THRESHOLD_: unset -> 65536" in text  # the terminal's table of settings that differ
    d2 = json.loads((tmp_path / "o2" / "compare.json").read_text())
    assert not [s for s in d2["settings_changed"] if s["name"].startswith("env:")]
    assert not any("environment differs" in n for n in d2["notes"])


def test_fsdp_on_cpu_names_glibcs_fixed_thresholds():
    """The FSDP analysis reads the rank's recorded environment: on CPU, glibc's thresholds set is a finding that
    names them and what they cost where measured; unset, not recorded, or on a GPU, nothing."""
    from types import SimpleNamespace

    from commprof.analysis.fsdp.advice import _allocator

    def rank(env, kind="cpu"):
        return SimpleNamespace(sidecar=SimpleNamespace(env=env), device_kind=kind)

    f = _allocator(rank({"MALLOC_TRIM_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1"}))  # type: ignore[arg-type]
    assert f is not None and f.severity == "medium" and "MALLOC_TRIM_THRESHOLD_=65536" in f.text
    assert "1.3-1.4x" in f.text and "OMP_NUM_THREADS" not in f.text
    assert _allocator(rank({"OMP_NUM_THREADS": "1"})) is None  # type: ignore[arg-type]
    assert _allocator(rank(None)) is None and _allocator(SimpleNamespace(sidecar=None)) is None  # type: ignore[arg-type]
    # on a GPU the unshard buffers are CUDA's caching allocator's, not glibc's
    assert _allocator(rank({"MALLOC_TRIM_THRESHOLD_": "65536"}, "cuda")) is None  # type: ignore[arg-type]


def test_summary_json_has_no_environment_where_none_was_recorded():
    """A plain torch.profiler trace set (no sidecars): no rank row carries ``env`` (absent, not empty)."""
    import commprof
    from commprof.render.summary import summary

    rows = summary(commprof.analyze(commprof.load(real("dlrm_8gpu_v100"))))["ranks"]
    assert len(rows) == 8 and not any("env" in r for r in rows)


def test_a_monitor_rank_that_set_nothing_of_note_still_recorded_its_environment(tmp_path: Path):
    """A rollup line with ``env: {}`` (no variable of note set) is a record, not its absence: such ranks count as
    peers whose environment is known, so one rank's odd variable is told against them."""
    from commprof.analysis.crossrank.environment import apart
    from commprof.formats import monitor as F
    from commprof.reader.monitor import read_rollups

    envs = {}
    for r, env in ((0, {}), (1, {"MALLOC_ARENA_MAX": "2"}), (2, {})):
        line = {F.SCHEMA: F.MONITOR_SCHEMA, F.RANK: r, F.WORLD_SIZE: 3, F.STEPS: [[0, 1, 2]], F.COLLECTIVES: [],
                F.FR_LOST: 0, F.ENV: env}
        p = tmp_path / F.monitor_name(r)
        p.write_text(json.dumps(line) + "\n")
        got = read_rollups(p, [])
        assert got is not None and got.env == env
        envs[r] = got.env
    assert apart(1, envs) == [("MALLOC_ARENA_MAX", "2", None)]
    old = tmp_path / "old" / F.monitor_name(0)  # a line written before rollups held env
    old.parent.mkdir()
    old.write_text(json.dumps({F.SCHEMA: F.MONITOR_SCHEMA, F.RANK: 0, F.STEPS: [[0, 1, 2]]}) + "\n")
    got_old = read_rollups(old, [])
    assert got_old is not None and got_old.env is None


def test_a_setting_that_changes_the_work_is_never_one_without_visible_effect():
    """Accumulation 1 -> 4 under no_sync keeps one all-reduce per step and the same buckets, but four times the
    compute: "changed nothing the runs can see, so this difference is ... not the setting's effect" was false."""
    for name in ("micro_batches_per_step", "fsdp_prefetch", "static_graph", "find_unused_parameters",
                 "gradient_as_bucket_view"):
        assert unseen(None, None, [SettingChange(name, 1, 4)]) == ()  # type: ignore[arg-type]
