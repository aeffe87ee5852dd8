"""What ``commprof.trace()`` does with each cycle torch.profiler hands it: drop its results once written, and keep
an earlier cycle's good trace over one whose device collection stopped early."""

from __future__ import annotations

from typing import Any

from torch.profiler import ProfilerAction


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
    """Whether the cycle handed over ended because the device's activity collection stopped early (CUPTI's buffers
    full): torch >= 2.13 then ends the cycle in ``DEVICE_STOPPED`` and still calls ``on_trace_ready``, on a recording
    that lacks the device's work after the stop, or is empty where the stop came before the cycle recorded."""
    stopped = getattr(ProfilerAction, "DEVICE_STOPPED", None)
    return stopped is not None and getattr(prof, "current_action", None) == stopped


def stopped_text(step: int, kept: bool) -> str:
    """The sidecar warning for a cycle whose device collection stopped early (``step``: torch.profiler's step)."""
    what = ("the previous cycle's trace is kept (this cycle's is not written)" if kept else
            "the trace is written as recorded: the device's activity after the stop is missing from it (the GPU "
            "kernels, collectives included), so its figures for those steps are not the run's")
    return (f"the device's activity collection stopped early in the profiler cycle ending at step {step} (its "
            f"buffers full: torch.profiler's DEVICE_STOPPED); {what}; profile fewer active steps per cycle")
