"""The monitor's watchdog: a daemon thread that writes a hang dump when the training loop has not called
``step()`` for ``timeout_s``, or on SIGUSR1 — also while the main thread is blocked inside a collective.  Before
the first ``step()`` it waits ``STARTUP_FACTOR`` times as long: a loop's set-up (building and wrapping the model,
the first batches, compilation) is no step and may take longer than a step without being a hang.

A Python signal handler runs only when the main thread returns to the interpreter, which a rank stuck in a
collective never does; so the handler is a no-op and the signal reaches the thread through
``signal.set_wakeup_fd`` (CPython's C-level handler writes the signal number there, from any thread).  Where the
process already has a SIGUSR1 handler or a wakeup fd (asyncio), commprof leaves them alone and says so.
"""

from __future__ import annotations

import select
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

POLL_S = 1.0
STARTUP_FACTOR = 3.0  # the wait before the first step(), in timeouts


class Watchdog:
    def __init__(self, timeout_s: float, dump: Callable[[str, int, float], None]) -> None:
        self.timeout_s = timeout_s
        self._dump = dump
        self._last = time.monotonic()
        self._step = 0
        self._dumped_step: int | None = None
        self._stop = threading.Event()
        self._rsock, self._wsock = socket.socketpair()
        self._rsock.setblocking(False)
        self._wsock.setblocking(False)
        self._signal_installed = False
        self._old_handler: Any = None
        self._thread = threading.Thread(target=self._run, name="commprof-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def beat(self, step: int) -> None:
        """The loop made progress (called from ``step()``)."""
        self._last = time.monotonic()
        self._step = step

    def install_signal(self) -> str | None:
        """SIGUSR1 -> a dump; returns a warning where it cannot be installed (call from the main thread)."""
        if threading.current_thread() is not threading.main_thread():
            return "not in the main thread: SIGUSR1 dumps are off"
        current = signal.getsignal(signal.SIGUSR1)
        if current not in (signal.SIG_DFL, None):
            return "the process already handles SIGUSR1: SIGUSR1 dumps are off (hangs are still dumped)"
        old_fd = signal.set_wakeup_fd(self._wsock.fileno(), warn_on_full_buffer=False)
        if old_fd != -1:
            signal.set_wakeup_fd(old_fd)
            return "the process already has a signal wakeup fd (asyncio?): SIGUSR1 dumps are off"
        self._old_handler = signal.signal(signal.SIGUSR1, _ignore)
        self._signal_installed = True
        return None

    def stop(self) -> None:
        self._stop.set()
        if self._signal_installed and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGUSR1, self._old_handler if self._old_handler is not None else signal.SIG_DFL)
            signal.set_wakeup_fd(-1)
            self._signal_installed = False
        self._thread.join(timeout=5)
        self._rsock.close()
        self._wsock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._rsock], [], [], POLL_S)
            except (OSError, ValueError):
                return
            if ready and self._signalled():
                self._fire("SIGUSR1")
            idle = time.monotonic() - self._last
            if idle >= self.limit_s and self._dumped_step != self._step:
                self._dumped_step = self._step
                what = "no step() for" if self._step else "no first step() after"
                self._fire(f"{what} {idle:.0f} s (hang_timeout_s={self.timeout_s:g})")

    @property
    def limit_s(self) -> float:
        """How long the loop may go without ``step()`` now: ``timeout_s``, or longer before the first step."""
        return self.timeout_s * (STARTUP_FACTOR if self._step == 0 else 1.0)

    def _signalled(self) -> bool:
        try:
            data = self._rsock.recv(512)
        except (BlockingIOError, OSError):
            return False
        return signal.SIGUSR1.value in data

    def _fire(self, reason: str) -> None:
        try:
            self._dump(reason, self._step, time.monotonic() - self._last)
        except Exception:  # a dump must never take the process down
            pass


def _ignore(_signum: int, _frame: Any) -> None:
    """SIGUSR1's Python handler: the watchdog thread does the work (see the module's docstring)."""
