"""The Section contract and its arbiter, on hand-built sections; and every family's section from a real run."""

from __future__ import annotations

from commprof.analysis.arbiter import arbitrate
from commprof.analysis.section import EXPOSED, NOTHING_TO_GAIN, Advice, Check, Finding, Section, WhatIf

EXPOSED_68 = Finding("high", "Exposed communication: 68% of the step", EXPOSED)
HIDDEN = Finding("info", "Communication is already hidden: nothing to gain", NOTHING_TO_GAIN)


def _check(model_ms: float, measured_ms: float) -> Check:
    return Check(rank=0, model_step_ms=model_ms, measured_step_ms=measured_ms, tolerance_pct=10.0)


def test_check_error_and_tolerance():
    c = _check(68.0, 100.0)
    assert c.error_pct == -32.0 and not c.ok
    assert _check(95.0, 100.0).ok and _check(100.0, 0.0).error_pct == 0.0


def test_a_replay_that_misses_cannot_say_nothing_to_gain():
    ddp = Section(family="ddp", detail=None, findings=(HIDDEN,), check=_check(68.0, 100.0))
    findings, _ = arbitrate([ddp])
    assert findings == ()


def test_nothing_to_gain_goes_beside_a_measured_exposed_finding_of_another_family():
    cross = Section(family="crossrank", detail=None, findings=(EXPOSED_68,))
    ddp = Section(family="ddp", detail=None, findings=(HIDDEN,), check=_check(99.0, 100.0))
    findings, _ = arbitrate([cross, ddp])
    assert findings == (EXPOSED_68,)


def test_nothing_to_gain_stands_with_a_good_model_and_little_exposed():
    small = Finding("info", "Exposed communication: 1% of the step", EXPOSED)
    cross = Section(family="crossrank", detail=None, findings=(small,))
    ddp = Section(family="ddp", detail=None, findings=(HIDDEN,), check=_check(99.0, 100.0))
    assert arbitrate([cross, ddp])[0] == (small, HIDDEN)


def test_findings_and_advice_keep_the_families_order():
    a1 = Advice(knob="bucket_cap_mb", value=25, baseline_step_ms=100.0, predicted_step_ms=80.0, why="why")
    a2 = Advice(knob="partition", value=[2, 2], baseline_step_ms=50.0, predicted_step_ms=40.0, why="why")
    f1, f2 = Finding("medium", "one"), Finding("info", "two")
    s1 = Section(family="ddp", detail=None, findings=(f1,), advice=(a1,),
                 whatifs=(WhatIf(knob="bucket_cap_mb", value=25, predicted_step_ms=80.0),))
    s2 = Section(family="pipeline", detail=None, findings=(f2,), advice=(a2,))
    assert arbitrate([s1, s2]) == ((f1, f2), (a1, a2))
    assert s1.whatifs[0].predicted_range_ms is None and s1.whatifs[0].predicted_peak_bytes is None


def test_the_example_run_has_its_families_and_the_report_reads_them():
    import commprof
    from conftest import ROOT

    rep = commprof.analyze(commprof.load(ROOT / "traces" / "example"))
    fams = [s.family for s in rep.sections]
    assert fams[:2] == ["crossrank", "ddp"] and "fsdp" not in fams
    ddp = rep.section("ddp")
    assert ddp is not None and ddp.detail.buckets == rep.buckets and ddp.whatifs
    assert all(w.predicted_step_ms > 0 for w in ddp.whatifs)
    assert ddp.check is not None and ddp.check.model_step_ms > 0
    assert rep.findings == tuple(f for s in rep.sections for f in s.findings if f in rep.findings)


def test_communication_on_the_critical_path_is_a_measured_exposure():
    """A dimension's communication on the job's critical path is measured exposure: a gloo DDP run said "already
    hidden ... nothing to gain" beside 14.49 ms of its all-reduces on the path (the per-rank exposed finding was
    info: most of it waiting); the critical-path finding now silences the model's claim as the exposed one does."""
    import commprof
    from conftest import real

    rep = commprof.analyze(commprof.load(real("netns_500mbit_amd_epyc") / "traced_default_bucket25"))
    on_path = [f for f in rep.findings if "communication on the critical path" in f.text]
    assert on_path and all(f.claim == EXPOSED for f in on_path)
    path = Finding("medium", on_path[0].text, EXPOSED)
    cross = Section(family="crossrank", detail=None, findings=(path,))
    ddp = Section(family="ddp", detail=None, findings=(HIDDEN,), check=_check(96.0, 100.0))
    assert arbitrate([cross, ddp])[0] == (path,)
