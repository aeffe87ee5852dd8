"""What ``commprof.trace()`` does with each cycle torch.profiler hands it: drop its results once written, and keep
an earlier cycle's good trace over one whose device collection stopped early."""

from __future__ import annotations

from typing import Any

import torch
from torch.profiler import ProfilerAction

from ..formats.sidecar import KEPT_EARLIER_CYCLE


def release(prof: Any) -> None:
    """Drop the finished cycle's results once written (or not writable): torch.profiler keeps them until the next
    cycle or the end of the loop, and the steps after the profiler then ran slower than without it (FSDP2 over gloo,
    2 ranks on 2 cores: the traced runs' step outside the profiler 15-28% above untraced runs of the job, 5-15% under
    with them dropped, bench_no_sync), skewing the step every prediction is calibrated on.  A later cycle makes a
    new one (``prepare_trace``); idempotent."""
    try:
        prof.profiler = None
    except Exception:  # never break training over it
        pass


def device_stopped(prof: Any) -> bool:
    """Whether the cycle handed over lost its device activity: the device's collection stopped early (CUPTI's
    buffers full).  torch >= 2.13 ends such a cycle in ``DEVICE_STOPPED`` where the stop is seen after a warmup or a
    recording step, and still calls ``on_trace_ready``; a stop in the cycle's last step (or a loop that ended the
    cycle) reaches the callback in another action, so Kineto's own flag is asked too, for device profilers only (a
    CPU-only one must not read a device profiler's stale flag, as torch's ``step`` says)."""
    stopped = getattr(ProfilerAction, "DEVICE_STOPPED", None)
    if stopped is not None and getattr(prof, "current_action", None) == stopped:
        return True
    flag = getattr(torch.autograd, "_is_kineto_stopped", None)
    try:
        return getattr(prof, "use_device", None) is not None and flag is not None and bool(flag())
    except Exception:  # never break training over it
        return False


def stopped_text(step: int, kept: bool) -> str:
    """The sidecar warning for a cycle whose device collection stopped early (``step``: torch.profiler's step when the
    cycle was handed over)."""
    if kept:
        return (f"the device's activity collection stopped early in the profiler cycle handed over at step {step} "
                f"(its buffers full); {KEPT_EARLIER_CYCLE} (this cycle's is not written), so this rank's trace may "
                "hold other steps than its peers'; profile fewer active steps per cycle")
    return (f"the device's activity collection stopped early in the profiler cycle handed over at step {step} (its "
            "buffers full); the trace is written as torch.profiler handed it over: from the stop on it lacks the "
            "device's work (the GPU kernels, collectives included), and where the stop came in its warmup or before "
            "its last steps, their operators too, so its figures for those steps are not the run's; profile fewer "
            "active steps per cycle")
