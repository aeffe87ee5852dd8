"""What ``commprof.monitor`` wrote (rollups, hang dumps, crash stacks) and what PyTorch's own Flight Recorder dumps
hold, as typed records.  Times are Unix nanoseconds (each rank's own clock)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple


@dataclass(frozen=True, slots=True)
class FREntry:
    """One collective in a rank's Flight Recorder."""

    seq: int | None  # collective_seq_id within its process group
    op: str  # all_reduce, barrier, ...
    pg: str  # process group name
    input_sizes: tuple[tuple[int, ...], ...]
    input_dtypes: tuple[str, ...]
    state: str | None  # "scheduled", "started", "completed" (gloo: always "scheduled")
    retired: bool | None  # False: still pending
    created_ns: int | None

    @property
    def pending(self) -> bool:
        return self.retired is False or (self.retired is None and self.state in ("scheduled", "started"))

    def signature(self) -> str:
        """The call as a user would write it: op, sizes, dtypes."""
        sizes = ", ".join("[" + ", ".join(map(str, s)) + "]" for s in self.input_sizes)
        dtypes = "/".join(sorted(set(self.input_dtypes)))
        return f"{self.op}({sizes}{' ' + dtypes if dtypes else ''})" if sizes else f"{self.op}()"


@dataclass(frozen=True, slots=True)
class Frame:
    file: str
    line: int
    function: str
    code: str


@dataclass(frozen=True, slots=True)
class ThreadStack:
    name: str
    main: bool
    frames: tuple[Frame, ...]  # innermost last


@dataclass(frozen=True, slots=True, kw_only=True)
class HangDump:
    """A rank's dump: the monitor's (hang, SIGUSR1, exception) or PyTorch's own on an NCCL timeout."""

    rank: int
    path: str
    source: str  # "commprof" or "pytorch"
    reason: str
    step: int | None
    time_ns: int | None
    fr_error: str | None  # why the Flight Recorder could not be read (None: it was)
    entries: tuple[FREntry, ...]
    threads: tuple[ThreadStack, ...]
    world_size: int | None = None
    env: dict[str, str] | None = None  # the variables that change how fast a job runs (None: not recorded)


@dataclass(frozen=True, slots=True)
class Crash:
    """A rank's crash stacks (Python's faulthandler, on SIGABRT / SIGSEGV ...)."""

    rank: int
    path: str
    error: str  # "Aborted", "Segmentation fault", ...
    frames: tuple[Frame, ...]  # the crashing thread's, innermost last


@dataclass(frozen=True, slots=True)
class Issue:
    """One collective instance as a rank issued it: its step, sequence number and offset from the step start."""

    step: int
    seq: int
    offset_us: float


@dataclass(frozen=True, slots=True)
class RollupCollective:
    op: str
    pg: str
    count: int
    bytes: int
    issues: tuple[Issue, ...]


class MonitorStep(NamedTuple):
    """One step the monitor timed (Unix ns, the rank's own clock)."""

    step: int
    start_ns: int
    end_ns: int


@dataclass(frozen=True, slots=True)
class MonitorRank:
    """One rank's ``rank{R}.monitor.jsonl``."""

    rank: int
    path: str
    world_size: int | None
    backend: str | None
    steps: tuple[MonitorStep, ...]  # in step order
    collectives: tuple[RollupCollective, ...]
    lost: int  # Flight Recorder entries dropped before they were rolled up
    env: dict[str, str] | None = None  # the variables that change how fast a job runs (None: not recorded)
    closed: bool = False  # the monitored block was left without an exception: the rank's loop ended
    rollups: tuple[int, ...] = ()  # the steps its monitor's rollups ran in (the step after each line's last)


@dataclass(frozen=True, slots=True)
class MonitorRun:
    path: str
    ranks: tuple[MonitorRank, ...]
    hangs: tuple[HangDump, ...]
    crashes: tuple[Crash, ...]
    warnings: tuple[str, ...]

    @property
    def world_size(self) -> int | None:
        sizes = [r.world_size for r in self.ranks if r.world_size] + [h.world_size for h in self.hangs if h.world_size]
        return max(sizes) if sizes else None

    @property
    def envs(self) -> dict[int, dict[str, str]]:
        """Each rank's recorded environment: its rollups', else its hang dump's (a job that hung before its first
        rollup); ranks that recorded none are absent."""
        out = {h.rank: h.env for h in self.hangs if h.env is not None}
        out.update({r.rank: r.env for r in self.ranks if r.env is not None})
        return out
