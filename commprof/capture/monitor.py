"""``commprof.monitor()``: always-on, low-overhead watch of a training job that runs without the profiler.

Per rank, into ``out_dir``: every ``every`` steps one rollup line in ``rank{R}.monitor.jsonl`` (per collective
kind and process group: count, bytes, each instance's issue time from its step's start, durations where the
backend records them; read from PyTorch's Flight Recorder), and ``rank{R}.hang.json`` when the loop stalls past
``hang_timeout_s``, on SIGUSR1, or when it leaves with an exception (the recorder's entries, every thread's
Python stack, the step).  It never blocks training, never issues a collective, never changes what training
computes; a failure of its own is a warning, never an exception in the loop.  Rollups run on a background thread
(reading 2,000 Flight Recorder entries takes about 25 ms): ``step()`` itself costs a few microseconds.
"""

from __future__ import annotations

import bisect
import faulthandler
import os
import platform
import queue
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Literal

import orjson

from ..atomic import write_bytes
from ..formats import monitor as F
from ..warn import warn
from . import environment, flightrec
from .watchdog import Watchdog


def _rank_world() -> tuple[int, int, str | None]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), str(dist.get_backend())
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), None


def _nbytes(sizes: Any, dtypes: Any) -> int:
    total = 0
    if isinstance(sizes, list) and isinstance(dtypes, list):
        for shape, dt in zip(sizes, dtypes, strict=False):
            n = 1
            for d in shape if isinstance(shape, list) else []:
                n *= int(d) if isinstance(d, int) else 0
            total += n * F.FR_DTYPE_BYTES.get(str(dt), 0)
    return total


class MonitorSession:
    """What ``commprof.monitor()`` returns; call ``step()`` once per training step."""

    def __init__(self, out_dir: str | os.PathLike, *, hang_timeout_s: float = 600.0, every: int = 100) -> None:
        if not hang_timeout_s > 0 or every < 1:
            raise ValueError("hang_timeout_s must be > 0 and every >= 1")
        self.out_dir = Path(out_dir)
        self.hang_timeout_s, self.every = float(hang_timeout_s), int(every)
        self.step_num = 0
        self.log: list[str] = []
        self._steps: list[tuple[int, int, int]] = []  # step, start, end (Unix ns), not yet rolled up
        self._step_start = time.time_ns()
        self._seen: dict[str, int] = {}  # process group -> last Flight Recorder sequence number rolled up
        self._fd: int | None = None
        self._watchdog: Watchdog | None = None
        self._fault_file: Any = None
        self._failed = False
        self._queue: queue.Queue[list[tuple[int, int, int]] | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self.rank, self.world_size = 0, 1
        self.backend: str | None = None
        self._env = environment.performance_env()  # as the job was started

    # -- context manager ------------------------------------------------------------------------
    def __enter__(self) -> MonitorSession:
        try:
            self._start()
        except Exception as e:
            self._fail(e)
        self._step_start = time.time_ns()
        return self

    def _start(self) -> None:
        import torch.distributed as dist

        self.out_dir.mkdir(parents=True, exist_ok=True)
        if not (dist.is_available() and dist.is_initialized()):
            done = flightrec.switch_on()  # before init_process_group: the process groups will record
            if done:
                self._say(done)
        why = flightrec.unavailable()
        if why:
            self._say(why)
        self._watchdog = Watchdog(self.hang_timeout_s, self._dump)
        problem = self._watchdog.install_signal()
        if problem:
            self._say(problem)
        self._watchdog.start()
        self._worker = threading.Thread(target=self._work, name="commprof-rollups", daemon=True)
        self._worker.start()
        self._open()

    def _open(self) -> None:
        """The rank's files, once the rank is known (entered before ``init_process_group``: at the first step)."""
        import torch.distributed as dist

        if self._fd is not None:
            return
        if not (dist.is_available() and dist.is_initialized()) and "RANK" not in os.environ and self.step_num == 0:
            return
        self.rank, self.world_size, self.backend = _rank_world()
        self._fd = os.open(self.out_dir / F.monitor_name(self.rank), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        if not faulthandler.is_enabled():  # a crash in C++ (gloo's aborts): the Python stacks, at least
            self._fault_file = open(self.out_dir / f"rank{self.rank}.fault.txt", "w")  # noqa: SIM115
            faulthandler.enable(file=self._fault_file, all_threads=True)

    def __exit__(self, exc_type, exc, tb) -> Literal[False]:
        if exc is not None and not isinstance(exc, KeyboardInterrupt):
            self._dump(f"exception: {exc_type.__name__}: {str(exc)[:500]}", self.step_num,
                       (time.time_ns() - self._step_start) / 1e9, tb)
        if self._worker is not None:  # the rollups queued so far, then the steps since
            self._queue.put(None)
            self._worker.join(timeout=60)
        try:
            self._rollup(self._take(), closed=exc is None)
        except Exception as e:
            self._fail(e)
        if self._watchdog is not None:
            self._watchdog.stop()
        if self._fault_file is not None:
            faulthandler.disable()
            self._fault_file.close()
            fault = Path(self._fault_file.name)
            if fault.exists() and fault.stat().st_size == 0:
                fault.unlink()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        return False

    def step(self) -> None:
        """Mark the end of a training step."""
        now = time.time_ns()
        if self._fd is None and not self._failed:
            try:
                self._open()
            except Exception as e:
                self._fail(e)
        self._steps.append((self.step_num, self._step_start, now))
        self.step_num += 1
        self._step_start = now
        if self._watchdog is not None:
            self._watchdog.beat(self.step_num)
        if self.step_num % self.every == 0 and not self._failed:
            self._queue.put(self._take())

    def _take(self) -> list[tuple[int, int, int]]:
        steps, self._steps = self._steps, []
        return steps

    def _work(self) -> None:
        """The rollup thread: one rollup per batch of steps, until ``None``."""
        while (steps := self._queue.get()) is not None:
            if self._failed:
                continue
            try:
                self._rollup(steps)
            except Exception as e:
                self._fail(e)

    # -- rollups --------------------------------------------------------------------------------
    def _rollup(self, steps: list[tuple[int, int, int]], closed: bool = False) -> None:
        """One line for ``steps``; with ``closed`` (the block was left without an exception) it says so, a line
        of its own where no step is left: a rank whose loop ended while its peers still call collectives is told
        from one that was killed."""
        if self._fd is None or not (steps or closed):
            return
        colls: dict[tuple[str, str], dict[str, Any]] = {}
        lost = 0
        entries = flightrec.entries() if flightrec.unavailable() is None else []
        starts = [s[1] for s in steps]
        for e in entries:
            seq, pg, created = e[F.E_SEQ], e[F.E_PG], e[F.E_CREATED]
            if not isinstance(seq, int) or not isinstance(created, int) or seq <= self._seen.get(pg, 0):
                continue
            i = bisect.bisect_right(starts, created) - 1
            if i >= 0 and created <= steps[i][2]:
                step, start = steps[i][0], steps[i][1]
            elif closed and created >= self._step_start:  # the step the loop left unfinished: its calls count
                step, start = self.step_num, self._step_start
            else:
                continue  # issued outside the steps of this rollup
            lost += max(seq - self._seen.get(pg, 0) - 1, 0) if pg in self._seen else 0
            self._seen[pg] = seq
            c = colls.setdefault((e[F.E_OP], pg), {F.C_OP: e[F.E_OP], F.C_PG: pg, F.C_COUNT: 0, F.C_BYTES: 0,
                                                   F.C_ISSUES: [], F.C_DURATIONS: []})
            c[F.C_COUNT] += 1
            c[F.C_BYTES] += _nbytes(e[F.E_IN_SIZES], e[F.E_IN_DTYPES])
            c[F.C_ISSUES].append([step, seq, round((created - start) / 1e3, 1)])
        line = {F.SCHEMA: F.MONITOR_SCHEMA, F.RANK: self.rank, F.WORLD_SIZE: self.world_size,
                F.BACKEND: self.backend, F.HOST: platform.node(), F.PID: os.getpid(),
                F.FIRST_STEP: steps[0][0] if steps else None, F.LAST_STEP: steps[-1][0] if steps else None,
                F.STEPS: [list(s) for s in steps], F.COLLECTIVES: list(colls.values()), F.FR_LOST: lost,
                F.ENV: self._env, **({F.CLOSED: True} if closed else {})}
        os.write(self._fd, orjson.dumps(line) + b"\n")  # one write of a whole line: complete or absent

    # -- dumps ----------------------------------------------------------------------------------
    def _dump(self, reason: str, step: int, since_s: float, exc_tb: Any = None) -> None:
        """Write the dump; with ``exc_tb`` (the loop left with an exception) the main thread's stack is where the
        exception was raised."""
        self._open()
        fr: dict[str, Any] = {F.FR_AVAILABLE: False, F.FR_ENTRIES: [], F.FR_ERROR: flightrec.unavailable()}
        if fr[F.FR_ERROR] is None:
            try:
                fr = {F.FR_AVAILABLE: True, F.FR_ENTRIES: flightrec.entries(), F.FR_ERROR: None}
            except Exception as e:
                fr[F.FR_ERROR] = f"{type(e).__name__}: {e}"
        doc = {F.SCHEMA: F.HANG_SCHEMA, F.RANK: self.rank, F.WORLD_SIZE: self.world_size, F.BACKEND: self.backend,
               F.HOST: platform.node(), F.PID: os.getpid(), F.REASON: reason, F.STEP: step,
               F.SINCE_STEP_S: round(since_s, 3), F.TIME: time.time_ns(), F.FR: fr, F.THREADS: _stacks(exc_tb),
               F.ENV: self._env}
        write_bytes(self.out_dir / F.hang_name(self.rank), orjson.dumps(doc, option=orjson.OPT_INDENT_2))
        self._say(f"rank {self.rank}: wrote {F.hang_name(self.rank)} ({reason})")

    def _say(self, text: str) -> None:
        self.log.append(text)
        warn(f"commprof.monitor: {text}", stacklevel=3)

    def _fail(self, e: Exception) -> None:
        if not self._failed:
            self._say(f"monitoring stopped ({type(e).__name__}: {e}); training goes on")
        self._failed = True


def _stacks(exc_tb: Any = None) -> list[dict[str, Any]]:
    """Every thread's Python stack, innermost frame last (the main thread's: where ``exc_tb`` was raised)."""
    names = {t.ident: t.name for t in threading.enumerate()}
    main = threading.main_thread().ident
    out = []
    for ident, frame in sys._current_frames().items():
        frames = list(traceback.extract_stack(frame))
        if exc_tb is not None and ident == main:
            frames = list(traceback.extract_stack(exc_tb.tb_frame.f_back)) + list(traceback.extract_tb(exc_tb))
        stack = [[f.filename, f.lineno, f.name, (f.line or "")[:200]] for f in frames]
        out.append({F.T_NAME: names.get(ident, "?"), F.T_IDENT: ident, F.T_MAIN: ident == main, F.T_STACK: stack})
    return out


def monitor(out_dir: str | os.PathLike = "monitor", **kwargs: Any) -> MonitorSession:
    """Watch a training loop for hangs and slow ranks::

        with commprof.monitor("monitor", hang_timeout_s=600, every=100) as mon:
            for batch in loader:
                ...  # forward, backward, optimizer step
                mon.step()

    Works with or without ``commprof.trace()``; ``python -m commprof report monitor/`` diagnoses the files.
    """
    return MonitorSession(out_dir, **kwargs)
