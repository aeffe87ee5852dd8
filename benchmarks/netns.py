"""Two hosts on one machine: Linux network namespaces joined by a veth pair whose egress is limited
with ``tc qdisc ... tbf rate ...`` (netem is not available here).  Needs root and ``ip netns``.

    with TwoHosts(rate="2gbit") as net:
        net.run_ranks(["python", "-m", "commprof.workloads.demo", ...])  # rank r runs in net.ns[r]
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Sequence

ADDR = ("10.77.0.1", "10.77.0.2")


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

    def __exit__(self, *exc) -> None:
        for ns in self.ns:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
