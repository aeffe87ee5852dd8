"""Two hosts on one machine: Linux network namespaces joined by a veth pair whose egress is limited
with ``tc qdisc ... tbf rate ...`` (netem is not available here).  Needs root and ``ip netns``.

    with TwoHosts(rate="2gbit") as net:
        net.run_pair(lambda r: ["python", "-m", "commprof.workloads.demo", str(r), ...])  # rank r in net.ns[r]

``run_pair`` starts both ranks and waits for both; where one fails, the other (waiting for a peer that is gone, at
the rendezvous or in a collective) is stopped after ``grace_s`` instead of holding the caller until the timeout,
and both outputs come back.  ``launch`` runs a job through it and starts it once more, on a fresh port, where a rank
failed within its first ``STARTUP_S`` seconds: a failure to start (a port in use, a rendezvous that timed out) is
said on stderr and repeated once; any other failure is an error with both ranks' output.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence

ADDR = ("10.77.0.1", "10.77.0.2")
STARTUP_S = 60.0  # a rank that fails this soon after its start failed to start, not in the job


def port() -> int:
    """A port for the job's rendezvous, different from run to run."""
    return 20000 + (time.time_ns() // 1000) % 20000


class NetnsUnavailable(RuntimeError):
    pass


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


class TwoHosts:
    def __init__(self, rate: str = "2gbit", burst: str = "256kb", latency: str = "100ms") -> None:
        tag = uuid.uuid4().hex[:6]
        self.ns = (f"cp{tag}a", f"cp{tag}b")
        self.dev = (f"vcp{tag}a", f"vcp{tag}b")
        self.rate, self.burst, self.latency = rate, burst, latency

    def __enter__(self) -> TwoHosts:
        try:
            for ns in self.ns:
                _ip("netns", "add", ns)
            _ip("link", "add", self.dev[0], "type", "veth", "peer", "name", self.dev[1])
            for i in (0, 1):
                _ip("link", "set", self.dev[i], "netns", self.ns[i])
                self.exec(i, ["ip", "addr", "add", f"{ADDR[i]}/24", "dev", self.dev[i]])
                self.exec(i, ["ip", "link", "set", self.dev[i], "up"])
                self.exec(i, ["ip", "link", "set", "lo", "up"])
                if self.rate:
                    self.exec(i, ["tc", "qdisc", "add", "dev", self.dev[i], "root", "tbf", "rate", self.rate,
                                  "burst", self.burst, "latency", self.latency])
        except (subprocess.CalledProcessError, FileNotFoundError, PermissionError, OSError) as e:
            self.__exit__(None, None, None)
            msg = getattr(e, "stderr", "") or str(e)
            raise NetnsUnavailable(f"network namespaces unavailable: {msg.strip()}") from None
        return self

    def exec(self, i: int, cmd: Sequence[str]) -> None:
        subprocess.run(["ip", "netns", "exec", self.ns[i], *cmd], check=True, capture_output=True, text=True,
                       timeout=30)

    def set_rate(self, rate: str) -> None:
        for i in (0, 1):
            self.exec(i, ["tc", "qdisc", "replace", "dev", self.dev[i], "root", "tbf", "rate", rate,
                          "burst", self.burst, "latency", self.latency])
        self.rate = rate

    def popen(self, i: int, cmd: Sequence[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        e = {**os.environ, **(env or {}), "GLOO_SOCKET_IFNAME": self.dev[i]}
        return subprocess.Popen(["ip", "netns", "exec", self.ns[i], *cmd], env=e, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

    def run_pair(self, argv: Callable[[int], Sequence[str]], env: dict[str, str] | None = None,
                 timeout_s: float = 900.0, grace_s: float = 60.0) -> list[tuple[int, str, float]]:
        """Rank ``i`` runs ``argv(i)`` in namespace ``i``; (return code, output, seconds it ran) per rank.  A rank
        still running ``grace_s`` after the other failed, or at ``timeout_s``, is killed (return code < 0)."""
        with tempfile.TemporaryFile("w+") as log0, tempfile.TemporaryFile("w+") as log1:
            return self._pair(argv, env, timeout_s, grace_s, [log0, log1])

    def _pair(self, argv: Callable[[int], Sequence[str]], env: dict[str, str] | None, timeout_s: float,
              grace_s: float, logs: list) -> list[tuple[int, str, float]]:
        t0 = time.monotonic()
        procs = [subprocess.Popen(["ip", "netns", "exec", self.ns[i], *argv(i)],
                                  env={**os.environ, **(env or {}), "GLOO_SOCKET_IFNAME": self.dev[i]},
                                  stdout=logs[i], stderr=subprocess.STDOUT, text=True) for i in (0, 1)]
        ended: list[float | None] = [None, None]
        failed_at = None
        while any(p.poll() is None for p in procs):
            now = time.monotonic()
            for i, p in enumerate(procs):
                if p.poll() is not None and ended[i] is None:
                    ended[i] = now - t0
                    if p.returncode and failed_at is None:
                        failed_at = now
            if now - t0 > timeout_s or (failed_at is not None and now - failed_at > grace_s):
                for p in procs:
                    if p.poll() is None:
                        p.kill()
                break
            time.sleep(0.1)
        out = []
        for i, p in enumerate(procs):
            p.wait()
            logs[i].seek(0)
            out.append((p.returncode, logs[i].read(), ended[i] if ended[i] is not None else time.monotonic() - t0))
        return out

    def launch(self, argv: Callable[[int, int], Sequence[str]], env: dict[str, str] | None = None,
               retry: bool = True) -> list[tuple[int, str, float]]:
        """``argv(rank, port)`` on both hosts; raises with both outputs where a rank failed (once more first where
        it failed to start)."""
        res = self.run_pair(lambda i, p=port(): argv(i, p), env)
        if all(rc == 0 for rc, _o, _s in res):
            return res
        early = any(rc > 0 and secs < STARTUP_S for rc, _o, secs in res)
        if retry and early:
            last = next(o for rc, o, secs in res if rc > 0 and secs < STARTUP_S).strip().splitlines()[-1:]
            print(f"a rank failed to start ({' '.join(last)[:200]}); starting the job once more on another port",
                  file=sys.stderr)
            return self.launch(argv, env, retry=False)
        raise RuntimeError("a rank failed:\n" + "\n".join(f"rank {i} (exit {rc}):\n{o[-3000:]}"
                                                           for i, (rc, o, _s) in enumerate(res)))

    def __exit__(self, *exc) -> None:
        for ns in self.ns:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
