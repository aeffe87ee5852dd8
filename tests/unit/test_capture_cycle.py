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

    def __init__(self, action: ProfilerAction, step: int, marker: str) -> None:
        self.current_action, self.step_num, self.marker = action, step, marker
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
    assert len(said) == 1 and "stopped early" in said[0] and "step 9" in said[0] and "previous cycle's trace is kept" \
        in said[0]
    assert s.sidecar()[F.WARNINGS] == [said[0].split(": ", 1)[1]]


def test_a_first_cycle_that_stopped_is_written_with_what_it_lacks(tmp_path):
    s = session(tmp_path)
    said = callback(s, FakeProfile(STOPPED, 4, "partial"))
    assert written(s) == "partial" and s._exports == 1
    assert len(said) == 1 and "missing from it" in said[0] and "step 4" in said[0]
    # a later good cycle replaces it, as every cycle's trace replaces the last
    assert callback(s, FakeProfile(ProfilerAction.RECORD_AND_SAVE, 8, "good")) == []
    assert written(s) == "good" and s._exports == 2
