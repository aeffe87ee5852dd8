"""commprof: find, explain and fix the communication overhead of PyTorch distributed training.

Public API::

    with commprof.trace("traces/", model=ddp_model) as prof:   # capture (needs torch)
        ...
        prof.step()
    with commprof.monitor("monitor/") as mon:                  # always-on: hangs and slow ranks
        ...
        mon.step()
    run = commprof.load("traces/")                             # typed model of every rank
    report = commprof.analyze(run)                             # numbers, findings, advice
    commprof.plots(report)                                     # PNG plots by name
    commprof.to_dataframe(report, "collectives")               # a table as a pandas DataFrame

Importing commprof pulls in neither torch nor matplotlib.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .capture.options import TraceOptions, signature_of
from .errors import InputError

if TYPE_CHECKING:
    import pandas

    from .analysis.analyze import Report
    from .capture.monitor import MonitorSession
    from .capture.session import TraceSession
    from .model import Run

__all__ = ["InputError", "TraceOptions", "__version__", "analyze", "load", "monitor", "plots", "to_dataframe", "trace"]


@signature_of(TraceOptions)
def trace(*args: Any, **kwargs: Any) -> TraceSession:
    """Trace a training loop; call ``prof.step()`` once per step.  The options are ``TraceOptions``'s fields
    (``commprof.capture.options``, each with its docstring; listed in docs/capture.md)."""
    from .capture.session import TraceSession

    return TraceSession(TraceOptions(*args, **kwargs))


def monitor(out_dir: str | os.PathLike = "monitor", *, hang_timeout_s: float = 600.0,
            every: int = 100) -> MonitorSession:
    """Watch a training loop that runs without the profiler, for hangs and slow ranks; call ``mon.step()`` once per
    step.  See ``commprof.capture.monitor.monitor``."""
    from .capture.monitor import MonitorSession

    return MonitorSession(out_dir, hang_timeout_s=hang_timeout_s, every=every)


def load(path: str | Path, *, ranks: list[int] | None = None, max_bytes: int | None = None,
         workers: int | None = None, progress: Callable[[int, int, str], Any] | None = None,
         executor: Executor | None = None, steps: Iterable[int] | None = None, spill: bool | None = None,
         comm_kernels: Iterable[str] = (), cycle: int | None = None, per_rank: bool = False) -> Run:
    """Load a folder of per-rank traces (and sidecars) into a ``Run``.  ``comm_kernels``: more kernels that move
    data between ranks (regular expressions, optionally ``"op=regex"``).  ``cycle``: the profiler cycle of a folder
    holding several (1-based; default the last complete one).  ``per_rank``: ranks that cannot have run together
    give per-rank figures only instead of an ``InputError``.  See ``commprof.engine.load.load``."""
    from .engine import load as _load
    from .reader.decode.jsonio import DEFAULT_MAX_BYTES

    return _load(path, ranks=ranks, max_bytes=max_bytes or DEFAULT_MAX_BYTES, workers=workers, progress=progress,
                 executor=executor, steps=steps, spill=spill, comm_kernels=comm_kernels, cycle=cycle,
                 per_rank=per_rank)


def analyze(run: Run, *, steps: Iterable[int] | None = None, link_gbps: float | None = None,
            step_ms: float | None = None, per_rank_only: bool = False, whatif: Iterable[str] = (),
            drift_pct: float | None = None) -> Report:
    """Overlap, volumes, bandwidth, buckets, stragglers, findings and advice of a ``Run``.  ``step_ms``: the step
    time outside the profiler where the files do not record it (plain torch.profiler traces); ``whatif``: what-ifs
    to state in the findings even when memory is not near the device's limit ("fsdp").  Where the run's
    folder also holds the files of ``commprof.monitor``, their diagnosis (hangs, slow ranks) is the report's
    production section.  ``drift_pct``: how far the same job's mean step lands from run to run on your platform
    (a standard deviation, % of the step; default 5): the band of the traced settings spans it."""
    from .analysis.analyze import analyze as _analyze
    from .engine import digests_of
    from .reader.monitor import is_monitor_folder, read_monitor

    folder = Path(run.path)
    mon = read_monitor(folder) if folder.is_dir() and is_monitor_folder(folder) else None
    return _analyze(run, steps=steps, link_gbps=link_gbps, digests=digests_of(run), step_ms=step_ms, monitor=mon,
                    per_rank_only=per_rank_only, whatif=whatif, drift_pct=drift_pct)


def plots(report: Report) -> dict[str, bytes]:
    """The report's PNG plots by name (breakdown, timeline, buckets, bandwidth, stragglers)."""
    from .render.plot.plots import all_plots

    return all_plots(report)


def to_dataframe(report: Report, table: str = "ranks") -> pandas.DataFrame:
    """A table of the report as a pandas DataFrame (see ``commprof.render.frames.TABLES``)."""
    from .render.frames import to_dataframe as _to_dataframe

    return _to_dataframe(report, table)
