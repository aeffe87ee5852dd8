"""One rank's recorded environment against all its peers' (the sidecar's and the monitor's ``env``: the variables
that change how fast a job runs, ``commprof.capture.environment``), for the root cause, the monitor's slow ranks
and the hang verdict: told as evidence to check, never as a cause by itself.  (Between two runs: ``compare``.)"""

from __future__ import annotations

from collections.abc import Mapping

MIN_PEERS_AGREEING = 2  # peers that set a variable alike before one rank's other value is told (one is no norm)
SHOWN = 3  # variables named in a sentence; the rest counted
PER_DEVICE = frozenset({"CUDA_VISIBLE_DEVICES"})  # set per rank by launchers (SLURM): a value of its own is the norm


def shown(v: str | None) -> str:
    return "unset" if v is None else v


def apart(rank: int, envs: Mapping[int, Mapping[str, str]]) -> list[tuple[str, str | None, str | None]]:
    """(name, the rank's value, its peers' value) for each variable every peer set alike and ``rank`` set otherwise;
    none where ``rank`` has no record or fewer than ``MIN_PEERS_AGREEING`` peers have one."""
    if rank not in envs:
        return []
    mine = envs[rank]
    peers = [e for r, e in envs.items() if r != rank]
    if len(peers) < MIN_PEERS_AGREEING:
        return []
    out = []
    for name in sorted(set(mine).union(*peers) - PER_DEVICE):
        theirs = {e.get(name) for e in peers}
        if len(theirs) == 1 and mine.get(name) not in theirs:
            out.append((name, mine.get(name), theirs.pop()))
    return out


SLOW = "an allocator, thread pool or network interface of its own slows a rank by itself"
HANG = ("communication settings that differ between ranks, such as NCCL_*, GLOO_* or a socket interface, can keep "
        "a connection from being made or a collective from completing")


def apart_sentence(rank: int, envs: Mapping[int, Mapping[str, str]], why: str = SLOW, who: str = "Its") -> str:
    """" Its environment differs from all N peers': ...; check whether that was meant (why)." or ""."""
    odd = apart(rank, envs)
    if not odd:
        return ""
    named = ", ".join(f"{n}={shown(m)} (theirs {shown(t)})" for n, m, t in odd[:SHOWN])
    more = f" and {len(odd) - SHOWN} more" if len(odd) > SHOWN else ""
    return (f" {who} environment differs from all {len(envs) - 1} peers': {named}{more}; check whether that was "
            f"meant ({why}).")


def differs(before: Mapping[str, str] | None, after: Mapping[str, str] | None
            ) -> tuple[list[tuple[str, str | None, str | None]], str | None]:
    """Two runs' recorded environment variables (``capture.environment``) set differently, (name, before, after),
    None where unset, and compare's note on them; nothing where either run did not record its environment (older
    sidecars and plain traces)."""
    if before is None or after is None:
        return [], None
    diff = [(k, before.get(k), after.get(k)) for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]
    if not diff:
        return [], None
    named = "; ".join(f"{n} {shown(b)} -> {shown(a)}" for n, b, a in diff[:4])
    more = f" and {len(diff) - 4} more" if len(diff) > 4 else ""
    return diff, (f"the environment differs ({named}{more}): allocator, thread-pool and communication-library "
                  "variables change step times by themselves, and the verdict cannot tell their effect from the "
                  "settings'")
