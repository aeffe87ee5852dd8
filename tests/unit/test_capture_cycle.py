"""The trace callback's handling of a cycle whose device collection stopped early (torch >= 2.13 ends it in
DEVICE_STOPPED and still calls on_trace_ready, on a recording missing the device's work): it never replaces an
earlier cycle's trace and is named in the sidecar's warnings; the profiler's results are dropped either way."""

from __future__ import annotations

import gzip
import warnings

import orjson
import pytest
from torch.profiler import ProfilerAction

from commprof.capture.options import TraceOptions
from commprof.capture.session import TraceSession
from commprof.formats import sidecar as F

STOPPED = getattr(ProfilerAction, "DEVICE_STOPPED", None)
pytestmark = pytest.mark.skipif(STOPPED is None, reason="this torch has no ProfilerAction.DEVICE_STOPPED")


class FakeProfile:
    """What the callback uses of torch.profiler.profile: the action it ended in, its step, the export, the results."""

    def __init__(self, action: ProfilerAction, step: int, marker: str, use_device: str | None = None) -> None:
        self.current_action, self.step_num, self.marker, self.use_device = action, step, marker, use_device
        self.profiler: object | None = object()

    def export_chrome_trace(self, path: str) -> None:
        with open(path, "wb") as f:
            f.write(orjson.dumps({"traceEvents": [], "marker": self.marker}))


def session(tmp_path) -> TraceSession:
    s = TraceSession(TraceOptions(str(tmp_path)))
    s._prepare_folder()
    return s


def written(s: TraceSession) -> str:
    return orjson.loads(gzip.decompress(s.trace_path.read_bytes()))["marker"]


def callback(s: TraceSession, prof: FakeProfile) -> list[str]:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        s._on_trace_ready(prof)  # type: ignore[arg-type]
    assert prof.profiler is None  # dropped, written or not
    return [str(w.message) for w in seen]


def test_a_stopped_cycle_keeps_the_previous_cycles_trace_and_says_so(tmp_path):
    s = session(tmp_path)
    assert callback(s, FakeProfile(ProfilerAction.RECORD_AND_SAVE, 5, "good")) == []
    said = callback(s, FakeProfile(STOPPED, 9, "empty"))
    assert written(s) == "good" and s._exports == 1 and len(s._export_times) == 1
    assert len(said) == 1 and "stopped early" in said[0] and "step 9" in said[0] and F.KEPT_EARLIER_CYCLE in said[0]
    assert s.sidecar()[F.WARNINGS] == [said[0].split(": ", 1)[1]]


def test_a_first_cycle_that_stopped_is_written_with_what_it_lacks(tmp_path):
    s = session(tmp_path)
    said = callback(s, FakeProfile(STOPPED, 4, "partial"))
    assert written(s) == "partial" and s._exports == 1
    assert len(said) == 1 and "lacks the device's work" in said[0] and "step 4" in said[0]
    # a later good cycle replaces it, as every cycle's trace replaces the last
    assert callback(s, FakeProfile(ProfilerAction.RECORD_AND_SAVE, 8, "good")) == []
    assert written(s) == "good" and s._exports == 2


def test_a_stop_in_the_cycles_last_step_is_told_by_kinetos_flag_on_device_profilers_only(tmp_path, monkeypatch):
    """torch enters DEVICE_STOPPED only from a warmup or recording step: a stop in the cycle's last step reaches the
    callback as RECORD_AND_SAVE, so Kineto's flag is read too, for a device profiler (a CPU-only one must not read a
    stale flag)."""
    import torch

    s = session(tmp_path)
    callback(s, FakeProfile(ProfilerAction.RECORD_AND_SAVE, 5, "good", use_device="cuda"))
    monkeypatch.setattr(torch.autograd, "_is_kineto_stopped", lambda: True, raising=False)
    said = callback(s, FakeProfile(ProfilerAction.RECORD_AND_SAVE, 9, "late stop", use_device="cuda"))
    assert written(s) == "good" and len(said) == 1 and F.KEPT_EARLIER_CYCLE in said[0]
    assert callback(s, FakeProfile(ProfilerAction.RECORD_AND_SAVE, 13, "cpu only")) == []
    assert written(s) == "cpu only"
    monkeypatch.setattr(torch.autograd, "_is_kineto_stopped", lambda: 1 / 0, raising=False)  # never breaks training
    assert callback(s, FakeProfile(ProfilerAction.RECORD_AND_SAVE, 17, "flag fails", use_device="cuda")) == []


def test_a_run_refused_for_crossed_cycles_names_the_ranks_that_kept_an_earlier_one():
    from builders import rank_trace, run

    from commprof.engine.together import _kept_earlier
    from commprof.model import Sidecar

    def side(rank: int, warnings: tuple[str, ...]) -> Sidecar:
        return Sidecar(path="s", schema="commprof.sidecar/1", run_id="r", rank=rank, world_size=2, backend="nccl",
                       versions={}, device="cuda:0", ddp=None, layouts=(), buckets=(), step_times=(), warnings=warnings)

    from commprof.capture.cycle import stopped_text

    kept = run(rank_trace(0, sidecar=side(0, ())), rank_trace(1, sidecar=side(1, (stopped_text(9, kept=True),))))
    assert _kept_earlier(kept) == ("; rank 1 kept an earlier profiler cycle's trace, their device collection having "
                                   "stopped early in the last one (their sidecars' warnings)")
    assert _kept_earlier(run(rank_trace(0), rank_trace(1, sidecar=side(1, ("other",))))) == ""
