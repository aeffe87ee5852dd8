"""Steps cut by the end of the recording are left out of every per-step figure, with a warning naming them; a
complete last step is kept (HTA drops the last step always)."""

from __future__ import annotations

from builders import parse


def _step(n, ts, dur):
    return {"ph": "X", "cat": "user_annotation", "name": f"ProfilerStep#{n}", "pid": 1, "tid": 1, "ts": ts,
            "dur": dur}


def _op(ts, dur=100):
    return {"ph": "X", "cat": "cpu_op", "name": "aten::mm", "pid": 1, "tid": 1, "ts": ts, "dur": dur}


def test_a_stub_last_step_is_cut_and_named():
    ev = [_step(6, 0, 10_000), _op(100), _step(7, 10_000, 9_800), _op(10_100), _step(8, 19_800, 35)]
    rt = parse({"traceEvents": ev})
    assert [s.number for s in rt.steps] == [6, 7]
    (w,) = [w for w in rt.warnings if "cut by the end of the recording" in w]
    assert "ProfilerStep#8 (35 µs)" in w


def test_a_complete_last_step_is_kept():
    ev = [_step(2, 0, 10_000), _op(100), _step(3, 10_000, 9_000), _op(10_100), _step(4, 19_000, 4_000), _op(19_100)]
    rt = parse({"traceEvents": ev})
    assert [s.number for s in rt.steps] == [2, 3, 4] and not rt.warnings


def test_a_lone_step_with_no_work_is_cut():
    rt = parse({"traceEvents": [_step(7, 0, 65), _op(1_000)]})
    assert rt.steps == () and any("ProfilerStep#7" in w and "cut" in w for w in rt.warnings)


def test_a_lone_step_with_work_is_kept():
    rt = parse({"traceEvents": [_step(3, 0, 600_000), _op(100)]})
    assert [s.number for s in rt.steps] == [3] and not rt.warnings
