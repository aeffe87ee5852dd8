"""The CPU time of the host around each step: what the machine did besides this job.

A traced run that shares its CPUs with other work (another job on the node, a compile, a busy loop) is slower
than it will be alone, and steadily so: its steps need not vary, so step-to-step noise cannot see it, yet every
prediction calibrated on it is off.  At each step boundary the capture reads, on Linux:

- the busy time of the CPUs this process may run on (``/proc/stat``: user, nice, system and steal per CPU; steal
  is time the hypervisor gave to other guests; interrupts are the ranks' own traffic, mostly, and left out);
- this process's own CPU time (all its threads: ``time.process_time_ns``) and that of its child processes (data
  loader workers: the main thread's ``/proc/<pid>/task/<pid>/children``, then ``/proc/<pid>/stat``);
- the scheduler's account of the training loop's thread (the one that calls ``prof.step()``:
  ``/proc/self/task/<tid>/schedstat``, in ns): the time it ran and the time it was ready to run but waited for a
  CPU.  The wait is what contention cost the step's own thread, however the threads migrate (a busy process pinned
  to one core of two slows a synchronous job up to 2x while the other work averaged over the CPUs reads 30-48%).
  Kernels built without scheduler accounting (``CONFIG_SCHED_INFO``) leave this one reading out; a step whose two
  readings come from different threads records none.  (The ranks' other threads wait too, gloo's beside the compute:
  summed over every thread, a quiet 2-rank demo on two cores waits 38% of its ready time, its loop thread 20-23%.)

The analysis (``analysis.uncertainty.hostload``) subtracts the CPU time of every rank of the host from the busy
time of their CPUs: the rest is other work.  The counters tick in clock ticks (10 ms), so they are summed over
the run's steps, never judged per step.  Reading them costs about 40-60 us, once a step, at its end (2-core VM);
GPU runs skip the CPU counters (their step need not slow with the host's load) and read the loop thread's account
alone, kept open (about 3 us: a launch-bound rank's thread waiting for a CPU is why it is late); any failure
(another OS, a locked-down /proc) leaves them out, never breaks training.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import NamedTuple

from ..formats import sidecar as F

# user nice system steal (after the "cpuN" label); irq and softirq are left out: interrupt work is mostly the
# ranks' own traffic (the network stack), which the kernel does not charge to the process
_BUSY_FIELDS = (0, 1, 2, 7)
_STAT_LINE_BYTES = 256  # a "cpuN" line of /proc/stat: 10 counters of at most 20 digits


def allowed_cpus() -> tuple[int, ...] | None:
    """The CPUs this process may run on (its affinity), None where the OS does not say."""
    try:
        return tuple(sorted(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return None


def net_namespace() -> str | None:
    """This process's network stack: the boot's id and the inode of ``/proc/self/ns/net`` ("<boot id>/<inode>"; every
    host's first namespace has the same inode, its boot id tells the hosts apart), None where the OS does not say."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}/{os.stat('/proc/self/ns/net').st_ino}"
    except OSError:
        return None


class Counters(NamedTuple):
    """Cumulative counters at one instant (ns); ``run_ns`` and ``wait_ns`` None where the kernel keeps no scheduler
    account (``CONFIG_SCHED_INFO``)."""

    busy_ns: int | None  # the allowed CPUs' busy time (None: not read, GPU runs)
    cpu_ns: int | None  # this process's and its children's CPU time
    run_ns: int | None = None  # the calling thread on a CPU (the scheduler's account)
    wait_ns: int | None = None  # ... ready to run, waiting for a CPU
    tid: int | None = None  # that thread: two readings of different threads make no difference


class HostSampler:
    """Cumulative counters, read at each step boundary; ``sample()`` returns ``Counters`` or None when none can be
    read.  ``on=False`` (GPU runs): the loop thread's scheduler account alone, one small file read (a launch-bound
    step waits with its thread)."""

    def __init__(self, on: bool = True) -> None:
        self.cpus = allowed_cpus() if on else None
        try:
            self._tick_ns = 1e9 / os.sysconf("SC_CLK_TCK")
        except (AttributeError, ValueError, OSError):
            self._tick_ns = 1e7
        self.ok = self.cpus is not None and Path("/proc/stat").exists()
        self._sched = Path("/proc/self/task").exists()
        self._stat_fd: int | None = None  # /proc/stat, kept open (a re-read ~6 us, an open and read ~18 us)
        self._wanted = {f"cpu{c}".encode() for c in self.cpus or ()}
        self._stat_bytes = _STAT_LINE_BYTES * (max(self.cpus or (0,)) + 2)
        self._sched_fd: int | None = None  # the thread's account, kept open (a re-read is ~1 us, an open ~13 us)
        self._sched_tid: int | None = None

    def sample(self) -> Counters | None:
        busy = own = None
        if self.ok:
            try:
                busy, own = self._busy_ns(), time.process_time_ns() + self._children_ns()
            except (OSError, ValueError, IndexError):
                self.ok = False  # once unreadable, stop trying: nothing is recorded rather than half
        sched = self._sched_ns() if self._sched else None
        if sched is None:
            self._sched = False
        if busy is None and sched is None:
            return None
        return Counters(busy, own, *(sched or (None, None, None)))

    def _sched_ns(self) -> tuple[int, int, int] | None:
        """(ran, waited, thread id) of the calling thread: the training loop's, which calls ``prof.step()``; None
        where the kernel keeps no account (no file, or zeros: a thread that runs has run)."""
        tid = threading.get_native_id()
        try:
            fd = self._sched_fd
            if fd is None or tid != self._sched_tid:
                _close(self._sched_fd)
                self._sched_fd = None
                fd = os.open(f"/proc/self/task/{tid}/schedstat", os.O_RDONLY)
                self._sched_fd, self._sched_tid = fd, tid
            fields = os.pread(fd, 128, 0).split()
            ran, waited = int(fields[0]), int(fields[1])
        except (OSError, ValueError, IndexError):
            return None
        return (ran, waited, tid) if ran > 0 else None

    def close(self) -> None:
        """Let go of the files kept open (the session's end)."""
        _close(self._sched_fd)
        _close(self._stat_fd)
        self._sched_fd = self._sched_tid = self._stat_fd = None

    def _busy_ns(self) -> int:
        """The allowed CPUs' busy ticks from ``/proc/stat``, kept open and re-read from its start (its per-CPU lines
        come first: a buffer of ``_STAT_LINE_BYTES`` per CPU holds them; the interrupt lines after are not read)."""
        if self._stat_fd is None:
            self._stat_fd = os.open("/proc/stat", os.O_RDONLY)
        ticks = found = 0
        for line in os.pread(self._stat_fd, self._stat_bytes, 0).split(b"\n"):
            if not line.startswith(b"cpu"):
                break
            parts = line.split()
            if parts[0] in self._wanted:
                ticks += sum(int(parts[1 + i]) for i in _BUSY_FIELDS if 1 + i < len(parts))
                found += 1
        if found != len(self._wanted):  # a CPU went offline, or its line was cut: no half a count
            raise ValueError("/proc/stat: not every allowed CPU's line was read")
        return int(ticks * self._tick_ns)

    def _children_ns(self) -> int:
        """CPU time of the living descendants (data loader workers and their children)."""
        total = 0
        todo = _children(os.getpid())
        seen: set[int] = set()
        while todo:
            pid = todo.pop()
            if pid in seen:
                continue
            seen.add(pid)
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue  # it ended in between
            fields = stat[stat.rindex(")") + 2:].split()
            total += int((int(fields[11]) + int(fields[12])) * self._tick_ns)  # utime, stime
            todo.extend(_children(pid))
        return total


def _children(pid: int) -> list[int]:
    """Processes started by ``pid``'s main thread (where a data loader forks its workers): one file read."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []


def _close(fd: int | None) -> None:
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass


def step_fields(start: Counters | None, end: Counters | None) -> dict[str, int]:
    """A step's sidecar fields from the readings at its two ends: the CPU counters where both read them, the loop
    thread's account where both came from the same thread."""
    row: dict[str, int] = {}
    if start is None or end is None:
        return row
    busy, own = _diff(start.busy_ns, end.busy_ns), _diff(start.cpu_ns, end.cpu_ns)
    if busy is not None and own is not None:
        row[F.S_HOST_BUSY_NS], row[F.S_CPU_NS] = busy, own
    ran, waited = _diff(start.run_ns, end.run_ns), _diff(start.wait_ns, end.wait_ns)
    if ran is not None and waited is not None and end.tid is not None and end.tid == start.tid:
        row[F.S_SCHED_RUN_NS], row[F.S_SCHED_WAIT_NS] = ran, waited
    return row


def _diff(start: int | None, end: int | None) -> int | None:
    """A counter's change over a step; None where either reading is missing."""
    return end - start if start is not None and end is not None else None
