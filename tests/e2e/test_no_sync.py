"""Gradient accumulation within a step on live 2-rank gloo DDP jobs (the demo's ``micro_batches``): DDP
all-reducing after every micro-batch is found from the traces and advised against with ``no_sync()``; the same job
with ``no_sync()`` is told apart (one synchronization per step); ``commprof compare`` reads the change back from
the traces and checks the advice's band against the measured step."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from commprof.analysis.uncertainty.maths import Z
from conftest import ROOT

pytestmark = pytest.mark.slow
SIZE = {"width": 1024, "layers": 4, "batch": 32, "steps": 12, "micro_batches": 4}


def _report(folder: Path, out: Path) -> tuple[dict, str]:
    res = subprocess.run([sys.executable, "-m", "commprof", "report", str(folder), "-o", str(out)],
                         capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert res.returncode == 0, res.stderr
    return json.loads((out / "summary.json").read_text()), res.stdout


def _holds(check: dict, after: dict) -> None:
    """The band holds AFTER's measured step, the median of its steps outside the profiler, within that median's own
    uncertainty (the last micro-batch's transfer jitters on 2 cores): Z standard errors of a median of n steps."""
    nz = after["noise"]
    sd_pct = nz["unprofiled_step_variation_pct"] or nz["profiled_step_variation_pct"] or 0.0
    n = nz["unprofiled_steps"] or nz["profiled_steps"] or 1
    ci = Z * 1.2533 * sd_pct / 100.0 / n ** 0.5 * check["measured_step_ms"]
    lo, hi = check["predicted_range_ms"]
    print(f"band {lo}-{hi}, measured {check['measured_step_ms']} +- {ci:.1f}")
    assert lo - ci <= check["measured_step_ms"] <= hi + ci, (check, ci)


def test_all_reducing_every_micro_batch_is_found_advised_and_checked(tmp_path: Path):
    from commprof.workloads.demo import launch

    every, once = tmp_path / "every", tmp_path / "once"
    launch(every, nproc=2, no_sync=False, **SIZE)
    launch(once, nproc=2, no_sync=True, **SIZE)
    s, text = _report(every, tmp_path / "rep_every")
    said = " ".join(text.split())
    assert ("Every micro-batch synchronizes the gradients: 4 forward/backward passes per step (DDP forward calls), "
            "each followed by its all-reduces") in said
    adv = [a for a in s["advice"] if a["knob"] == "gradient_syncs_per_step"]
    held = [f for f in s["findings"] if f["text"].startswith("Not advised: gradient_syncs_per_step")]
    assert len(adv) + len(held) == 1  # advised, or withheld with its reason (a disturbed traced run)
    if adv:
        a = adv[0]
        assert a["value"] == 1 and "model.no_sync()" in a["why"]
        lo, hi = a["predicted_range_ms"]
        assert lo <= a["predicted_step_ms"] <= hi < a["baseline_step_ms"]
    # the replay's own advice assumes one synchronization per step: none of it stands on this run
    assert all(a["knob"] == "gradient_syncs_per_step" for a in s["advice"])

    s2, text2 = _report(once, tmp_path / "rep_once")
    assert ("Gradient accumulation: 4 micro-batches per step (DDP forward calls), the gradients synchronized once "
            "per step (model.no_sync() on the others)") in " ".join(text2.split())
    assert not [a for a in s2["advice"] if a["knob"] == "gradient_syncs_per_step"]

    out = tmp_path / "cmp"
    res = subprocess.run([sys.executable, "-m", "commprof", "compare", str(every), str(once), "-o", str(out)],
                         capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert res.returncode == 0, res.stderr
    d = json.loads((out / "compare.json").read_text())
    changed = {c["name"]: (c["before"], c["after"]) for c in d["settings_changed"]}
    assert changed["gradient_syncs_per_step"] == (4, 1) and "micro_batches_per_step" not in changed
    assert s["accumulation"]["wasted"] is True and s2["accumulation"]["gradient_syncs_per_step"] == 1
    assert d["verdict"]["change"] == "faster"
    if adv:
        check = next(c for c in d["advice_check"] if c["knob"] == "gradient_syncs_per_step")
        assert check["applied"] is True and check["measured_step_ms"] == d["after"]["untraced_step_ms"]
        _holds(check, s2)


def test_fsdp2_reduce_scattering_every_micro_batch_is_found_and_its_replays_withheld(tmp_path: Path):
    """FSDP2 (fully_shard over gloo), 4 micro-batches per step reduce-scattering after each, then with
    set_requires_gradient_sync(False) on the first 3: the advice names FSDP2's switch and the memory it costs, the
    replays that model one forward/backward pass per step (FSDP2's schedule, FSDP2 -> DDP) are withheld with why,
    and compare checks the advice against the second run."""
    from commprof.workloads.fsdpdemo import launch

    every, last = tmp_path / "every", tmp_path / "last"
    cfg = {"micro_batches": 4, "steps": 14, "layers": 4, "width": 1024, "batch": 32}
    launch(every, nproc=2, sync_last_only=False, **cfg)
    launch(last, nproc=2, sync_last_only=True, **cfg)
    s, _ = _report(every, tmp_path / "rep_every")
    adv = [a for a in s["advice"] if a["knob"] == "gradient_syncs_per_step"]
    held = [f for f in s["findings"] if f["text"].startswith("Not advised: gradient_syncs_per_step")]
    assert len(adv) + len(held) == 1
    if adv:
        assert "model.set_requires_gradient_sync(False)" in adv[0]["why"] and "MB more per rank" in adv[0]["why"]
    else:  # withheld where the band reaches the step as it is now (the profiler's slowing, unit-tested, or the
        # run's noise): the finding that names the waste says its gain is not beyond the band's uncertainty
        told = next(f for f in s["findings"] if f["text"].startswith("Every micro-batch synchronizes"))
        assert "not beyond the band's uncertainty: see below" in told["text"] and told["severity"] != "high", told
    texts = [f["text"] for f in s["findings"]]
    assert any(t.startswith("Not advised: FSDP2's schedule replay") for t in texts)
    assert any(t.startswith("Not advised: the FSDP2 -> DDP what-if") for t in texts)
    assert not s["whatif"] and all(a["knob"] == "gradient_syncs_per_step" for a in s["advice"])
    # the units' figures are a forward/backward pass's: the later passes' forward all-gathers are not the first's
    # backward ones (the root, never re-gathered in a backward pass, showed one), and the unsharded peak is not
    # more than the whole model (a user's 14.2 MB model read 18.1 MiB held at once)
    f = s["fsdp"]
    assert f["passes_per_step"] == 4 and "backward all-gather" not in f["units"][0]["phases"]
    assert 0 < f["peak_unsharded_bytes"] <= sum(u["unsharded_bytes"] for u in f["units"])
    gathers = [t for t in texts if t.startswith("FSDP's all-gathers")]  # present where they exceed 5% of a pass
    assert all("ms micro-batch (4 per step) exposed" in t for t in gathers), gathers
    s2, _ = _report(last, tmp_path / "rep_last")
    assert s2["accumulation"]["gradient_syncs_per_step"] == 1 and not s2["advice"]
    out = tmp_path / "cmp"
    res = subprocess.run([sys.executable, "-m", "commprof", "compare", str(every), str(last), "-o", str(out)],
                         capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert res.returncode == 0, res.stderr
    d = json.loads((out / "compare.json").read_text())
    # FSDP2's steps on 2 cores vary by 10-20%: with a few steps per run the verdict may not separate a 30% gain
    # from the runs' drift (CI 70: "no detectable change"); it must never call the change slower
    assert d["verdict"]["change"] in ("faster", "no detectable change"), d["verdict"]
    if adv:
        check = next(c for c in d["advice_check"] if c["knob"] == "gradient_syncs_per_step")
        assert check["applied"] is True
        _holds(check, s2)
