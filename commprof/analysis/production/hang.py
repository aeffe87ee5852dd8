"""Why a job hangs, from every rank's dump: which collective the ranks wait in, and which ranks never reached it
or called something else there.

Per process group, the stuck collective is the lowest sequence number that some rank still has pending.  Ranks
whose Flight Recorder never issued it are the culprits ("never reached"); where every rank issued it but not the
same call (op, sizes, dtypes), the ranks outside the largest group of identical calls are ("mismatch").  A rank
without a dump is named with what is known of it: its crash stacks, or its monitor's last step.  Each culprit's
place is the innermost frame of its main thread (or crashing thread) in the user's code.
"""

from __future__ import annotations

import linecache
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

from ...model import Crash, Frame, FREntry, HangDump, MonitorRun
from ..crossrank.environment import HANG, SHOWN, SLOW, apart, apart_sentence

_LIBRARY_PARTS = ("/site-packages/", "/dist-packages/", "/lib/python3", "<frozen ", "<string>")
_OWN = str(Path(__file__).resolve().parents[1])


@dataclass(frozen=True, slots=True)
class RankState:
    rank: int
    status: str  # "dump", "crashed", "no dump", "left" (no dump: its monitor closed without an exception)
    reason: str
    last_completed: FREntry | None
    pending: FREntry | None
    where: Frame | None  # innermost user frame
    step: int | None
    env: dict[str, str] | None = None  # its recorded environment (None: not recorded)


@dataclass(frozen=True, slots=True)
class Hang:
    kind: str  # "not reached", "mismatch", "died", "stalled" (a hang outside collectives), "stall" (it resumed)
    culprit_ranks: tuple[int, ...]
    text: str
    ranks: tuple[RankState, ...]
    collective: FREntry | None  # the stuck collective, as the waiting ranks issued it


def user_frame(frames: tuple[Frame, ...]) -> Frame | None:
    """The innermost frame in the user's code (not the standard library, installed packages or commprof)."""
    for f in reversed(frames):
        if not any(p in f.file for p in _LIBRARY_PARTS) and not f.file.startswith(_OWN):
            if not f.code:
                f = Frame(f.file, f.line, f.function, linecache.getline(f.file, f.line).strip())
            return f
    return frames[-1] if frames else None


def place(f: Frame | None) -> str:
    if f is None:
        return "at an unknown place"
    where = f"{Path(f.file).name}:{f.line} in {f.function}"
    return f"at {where}" + (f": {f.code}" if f.code else "")


def _main_frames(d: HangDump) -> tuple[Frame, ...]:
    main = [t for t in d.threads if t.main] or list(d.threads[:1])
    return main[0].frames if main else ()


def _states(mrun: MonitorRun, world: int) -> dict[int, RankState]:
    dumps: dict[int, HangDump] = {}
    for d in sorted(mrun.hangs, key=lambda d: d.source != "commprof"):  # the monitor's dump first
        dumps.setdefault(d.rank, d)
    crashes: dict[int, Crash] = {c.rank: c for c in mrun.crashes}
    last_step = {r.rank: r.steps[-1][0] for r in mrun.ranks if r.steps}
    closed = {r.rank for r in mrun.ranks if r.closed}
    out = {}
    for rank in range(world):
        dump = dumps.get(rank)
        if dump is not None:
            done = [e for e in dump.entries if not e.pending]
            pend = sorted((e for e in dump.entries if e.pending), key=lambda e: e.seq or 0)
            out[rank] = RankState(rank, "dump", dump.reason, done[-1] if done else None, pend[0] if pend else None,
                                  user_frame(_main_frames(dump)), dump.step)
        elif rank in crashes:
            c = crashes[rank]
            out[rank] = RankState(rank, "crashed", c.error, None, None, user_frame(c.frames), last_step.get(rank))
        else:
            out[rank] = RankState(rank, "left" if rank in closed else "no dump", "", None, None, None,
                                  last_step.get(rank))
    return out


def _stuck_at(got: dict[int, list[FREntry]], failed: set[int], reached: dict[int, int]) -> int | None:
    """The collective the group is stuck at: the lowest sequence number some rank has pending (a rank whose loop
    left with an exception has its last collective retired, failed: that one counts as its pending, unless a rank
    that left its loop issued no further than one before it, ``reached``: the last sequence number in the group of
    its monitor's closing rollup, which holds every call it issued (a killed rank's last rollup may lag by up to
    ``every`` steps: not used); then the first it never issued: its peers' gloo failed their later calls too)."""
    frontier = []
    for rank, es in got.items():
        pend = [e.seq for e in es if e.pending and e.seq is not None]
        if pend:
            frontier.append(min(pend))
        elif rank in failed and es:
            last = max(e.seq or 0 for e in es)
            never = [n + 1 for n in reached.values() if n + 1 <= last and any(e.seq == n + 1 for e in es)]
            frontier.append(min(never, default=last))
    return min(frontier) if frontier else None


def _join_crashed(groups: dict[str, list[int]], states: dict[int, RankState]) -> None:
    """A rank that crashed in C++ has no Flight Recorder dump, but its stack: it joins the group of ranks that
    were at the same line of the user's code."""
    for r, s in states.items():
        if s.status != "crashed" or s.where is None:
            continue
        for members in groups.values():
            if any(states[m].where is not None and (states[m].where.file, states[m].where.line)  # type: ignore[union-attr]
                   == (s.where.file, s.where.line) for m in members):
                members.append(r)
                break


def _died(members: list[int], states: dict[int, RankState]) -> str:
    dead = [r for r in members if states[r].status == "crashed"]
    return (f" ({_ranks(dead)} at the same line, then died: {states[dead[0]].reason})") if dead else ""


def _ranks(rs: list[int]) -> str:
    return ("rank " if len(rs) == 1 else "ranks ") + ", ".join(map(str, sorted(rs)))


def diagnose(mrun: MonitorRun) -> Hang | None:
    """The verdict, or None when no rank dumped or crashed; each rank with its recorded environment, and the culprits'
    (where none is named: any rank's) variables set apart from all their peers' told as evidence to check."""
    h = _diagnose(mrun)
    return None if h is None else with_env(h, mrun.envs)


def with_env(h: Hang, envs: dict[int, dict[str, str]]) -> Hang:
    if not envs:
        return h
    named = h.culprit_ranks or tuple(r for r in sorted(envs) if apart(r, envs))
    why = SLOW if h.kind == "stall" else HANG
    told = "".join(apart_sentence(r, envs, why, f"Rank {r}'s") for r in named[:SHOWN])
    return replace(h, text=h.text + told, ranks=tuple(replace(s, env=envs.get(s.rank)) for s in h.ranks))


def _diagnose(mrun: MonitorRun) -> Hang | None:
    if not mrun.hangs and not mrun.crashes:
        return None
    known = [d.rank for d in mrun.hangs] + [c.rank for c in mrun.crashes] + [r.rank for r in mrun.ranks]
    world = max(mrun.world_size or 0, max(known) + 1)
    states = _states(mrun, world)
    per_pg: dict[str, dict[int, list[FREntry]]] = defaultdict(dict)
    for d in mrun.hangs:
        for e in d.entries:
            per_pg[e.pg].setdefault(d.rank, []).append(e)
    silent = [r for r, s in states.items() if s.status != "dump"]
    failed = {d.rank for d in mrun.hangs if d.reason.startswith("exception")}
    left = {r for r, s in states.items() if s.status == "left"}  # their closing line holds every call they issued
    for pg in sorted(per_pg):
        issued = {r.rank: max(i.seq for c in r.collectives if c.pg == pg for i in c.issues)
                  for r in mrun.ranks if r.rank in left and any(c.pg == pg and c.issues for c in r.collectives)}
        verdict = _verdict(pg, per_pg[pg], states, failed, silent, issued)
        if verdict is not None:
            return resumed(verdict, mrun)
    crashed = sorted(r for r, s in states.items() if s.status == "crashed")
    if crashed:
        text = "; ".join(f"rank {r} died ({states[r].reason}) {place(states[r].where)}" for r in crashed) + \
               ". No rank's Flight Recorder shows a pending collective."
        return Hang("died", tuple(crashed), text, tuple(states.values()), None)
    reasons = sorted({s.reason for s in states.values() if s.reason})
    text = ("Dumps were written (" + "; ".join(reasons)[:300] + ") but no rank has a pending collective in its "
            "Flight Recorder: the ranks are stuck outside collectives (see each rank's stack).")
    return resumed(Hang("stalled", (), text, tuple(states.values()), None), mrun)


WATCHDOG = "no step()"  # how the watchdog's dump reason begins (commprof/capture/watchdog.py)


def resumed(h: Hang, mrun: MonitorRun) -> Hang:
    """A hang whose ranks all went on past the step of their watchdog dump is a stall: "rank 1 stalled 20.0 s at
    step 3 at train.py:81; the job resumed".  Dumps on request (SIGUSR1) or on an exception are left as they are."""
    last = {r.rank: r.steps[-1][0] for r in mrun.ranks if r.steps}
    dumps = [d for d in mrun.hangs if d.reason.startswith(WATCHDOG)]
    if not dumps or len(dumps) != len(mrun.hangs) or mrun.crashes:
        return h
    if any(d.step is None or last.get(d.rank) is None or last[d.rank] <= d.step for d in dumps):
        return h  # some rank that dumped never stepped again: a hang
    durs = {r.rank: {s: (e - b) / 1e9 for s, b, e in r.steps} for r in mrun.ranks}
    states = {s.rank: s for s in h.ranks}
    culprits = h.culprit_ranks or tuple(sorted({d.rank for d in dumps}))
    parts = []
    for r in culprits:
        st = states.get(r)
        step = st.step if st is not None else None
        took = durs.get(r, {}).get(step) if step is not None else None
        dur = f" {took:.1f} s" if took is not None else ""
        parts.append(f"rank {r} stalled{dur} at step {step} {place(st.where if st else None)}")
    end = max(last.values())
    text = ("; ".join(parts) + f"; the job resumed (every rank went on, to step {end}): a stall, not a hang"
            + (f" (the others waited in {h.collective.op} #{h.collective.seq})" if h.collective is not None else "")
            + ".")
    return Hang("stall", tuple(culprits), text, h.ranks, h.collective)


def _verdict(pg: str, got: dict[int, list[FREntry]], states: dict[int, RankState], failed: set[int],
             silent: list[int], reached_seq: dict[int, int]) -> Hang | None:
    """The verdict for one process group, or None when nothing is stuck in it."""
    n = _stuck_at(got, failed, reached_seq)
    if n is None:
        return None
    issued = {r: next((e for e in es if e.seq == n), None) for r, es in got.items()}
    for r in failed & set(got):  # gloo retires the calls a failure ended: the stuck one is its pending, not done
        if issued.get(r) is not None:
            before = [e for e in got[r] if e.seq is not None and e.seq < n]
            states[r] = replace(states[r], pending=issued[r], last_completed=before[-1] if before else None)
    reached = {r: e for r, e in issued.items() if e is not None}
    missing = sorted(r for r, e in issued.items() if e is None)
    groups: dict[str, list[int]] = defaultdict(list)
    for r, e in reached.items():
        groups[e.signature()].append(r)
    _join_crashed(groups, states)
    waiting = next(iter(reached.values()))
    what = f"{waiting.op} #{n} of process group {pg}"
    if len(groups) > 1:
        sizes = sorted((len(v) for v in groups.values()), reverse=True)
        # the ranks outside the one largest group of identical calls; with a tie, every rank is in question
        odd = sorted(r for v in groups.values() if len(v) < sizes[0] for r in v) if sizes[0] > sizes[1] \
            else sorted(reached)
        calls = "; ".join(f"{_ranks(v)} called {sig}" + _died(v, states)
                          for sig, v in sorted(groups.items(), key=lambda kv: -len(kv[1])))
        text = (f"Collective #{n} of process group {pg} differs between ranks: {calls}. "
                + " ".join(f"Rank {r} was {place(states[r].where)}." for r in odd))
        return Hang("mismatch", tuple(odd), text, tuple(states.values()), waiting)
    culprits = sorted((set(missing) | set(silent)) - {r for v in groups.values() for r in v})
    if culprits:
        parts = []
        for r in culprits:
            s = states[r]
            if s.status == "crashed":
                parts.append(f"rank {r} died ({s.reason}) {place(s.where)}")
            elif s.status == "left":
                step = f" after step {s.step}" if s.step is not None else ""
                parts.append(f"rank {r} left its monitored loop{step} without an exception (no dump, no crash) and "
                             "never issued it: the ranks ran different numbers of steps or collectives (a data "
                             "loader with fewer batches on it, an early break or return); give every rank the same "
                             "count, or run uneven inputs under DDP's join() context")
            elif s.status == "no dump":
                step = f"; its monitor's last step was {s.step}" if s.step is not None else ""
                parts.append(f"rank {r} left no dump and no crash record (killed, e.g. SIGKILL or the OOM "
                             f"killer, or lost){step}")
            else:
                last = s.last_completed
                done = f"; its last collective was {last.op} #{last.seq}" if last is not None else ""
                parts.append(f"rank {r} never reached it: it was {place(s.where)} (step {s.step}){done}")
        kind = "died" if all(states[r].status in ("crashed", "no dump") for r in culprits) else "not reached"
        verb = ("was" if len(reached) == 1 else "were") if set(reached) <= failed else \
            ("waits" if len(reached) == 1 else "wait")
        end = " when it failed (see the exception in each dump)" if set(reached) <= failed else ""
        text = (f"{_ranks(sorted(reached))} {verb} in {what} ({waiting.signature()}){end}; " + "; ".join(parts) + ".")
        return Hang(kind, tuple(culprits), text, tuple(states.values()), waiting)
    text = (f"Every rank issued {what} ({waiting.signature()}) and none completed it: no rank is missing and "
            "the calls agree, so the transfer itself stalls (a network fault, a peer process frozen outside "
            "Python, or a collective on another process group that this one waits for).")
    return Hang("stalled", (), text, tuple(states.values()), waiting)
