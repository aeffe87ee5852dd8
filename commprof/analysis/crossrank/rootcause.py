"""Who holds the job back: the root-cause rank (or ranks), from the cross-rank critical path and a replay of each step.

Each candidate (the ranks with the most own work on the critical paths) is replayed step by step
(``critgraph.replay``) with its own work before each collective cut to the median of its peers' own work before the
same collective (the other ranks of that instance) where its own was longer, and likewise its work before the
step's end; before a send or recv between pipeline stages, scaled by the other stages' median total over its own
(``peers``): the step it would have had at its peers' median speed.  Its *gain* in a step is the replayed step minus
that step.

The noise a claim must beat is the noise of the claim itself, not the step's variance (which mostly comes from
causes shared by every rank: they shift all ranks together and no rank's replay removes them).  Under pure jitter
every rank takes its turn on the path, and the gains the other ranks reach in the steps they hold are what jitter
produces: that distribution, over the other ranks on the path and the analyzed steps, is the claim's noise (a rank
not replayed counts with its own work on the path, the most it could gain).  Ranks S are named when

- S's median joint gain is more than ``STANDOUT`` times the high end (``JITTER_QUANTILE``) of the other ranks'
  per-step gains (the *jitter bar*): it stands out from what the others' slowness cost, one outlier step aside; and
  for several ranks, every member's median own work on the path is also more than ``STANDOUT`` times the high end of
  the other ranks' own work on the path (each alone gains little while another member is as slow);
- S's joint gain beats the best other rank's gain in a majority of the steps (consistency: a sign test; ranks
  that take turns, step by step, each hold a minority);
- every member is slower than its peers beyond chance (``_slower``: longer than its peers' median at the same
  collectives more often than chance would make it, a sign test at ``ALPHA`` over the ranks on the path; or longer
  in total by ``NET_SHARE`` of its gain in every step its gain passes ``STANDOUT`` times the jitter bar; or it leads
  slow steps that recur at a period, ``uncertainty.periodic``): a rank that merely happened to be slower at the
  moments that counted, and faster elsewhere in those steps, is not slower; a step it gains nothing in does not
  undo the others (rank 0 of two saving a checkpoint every third step, 17 ms faster in one, was not named);
- and S's median joint gain is at least ``MIN_GAIN_FRACTION`` of the step.

One rank is tried first (the largest median gain), then the two, three ... (up to ``MAX_RANKS``, and at most half
the ranks) with the most own work on the path: ranks that stand out together (two slow GPUs of one tensor-parallel
group) are named together.
Otherwise a rank whose transfers are slower than its peers' on the same collectives, waits removed, beyond the
others' (``slowlink``) is named for a slow link; else the verdict is "no single rank holds the job back", with the
spread of the ranks' shares of the path.  A verdict resting on one analyzed step says so ("in 1 of 1 steps: trace
more steps to confirm"): one step cannot tell a cause from that step's accident; so does one whose count of steps
held jitter alone reaches (``chance_p`` over ``ALPHA``: of two ranks, "in 3 of 3 steps (a count chance alone gives
among 2 ranks, p = 0.25: trace at least 6 steps, ... to confirm)"); both are weaker findings, led by "may hold the
job back" instead of "holds the job back".
What the named rank was doing is the part (compute, host / launch, idle before collectives) whose cut alone gains
most.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from ...model import RankTrace
from ...numlist import number_list
from ..perrank import RankDigest
from ..uncertainty.changepoint import ChangePoint
from ..uncertainty.periodic import Periodic
from ..uncertainty.regimes import by_regime, in_steps
from .chance import holds, one, one_in_episode, weak
from .critgraph import StepGraph, build, carried_start, carries, length, replay
from .critpath import COMM, StepPath, walk
from .matching import CrossRank
from .p2p import links
from .peers import COMPUTE, HOST, IDLE, own_and_peer, peer_parts, ratio_to_peers
from .pgkind import NAMES, SHORT, GroupKind, group_kinds
from .slowlink import SlowLink, slow_link
from .topops import TopOp, top_ops
from .work import WorkGap

MIN_GAIN_FRACTION = 0.02
SLOW_LINK = "slow link"
STANDOUT = 2.0
CANDIDATES = 8  # replayed one by one; the others' gains are bounded by their own work on the path
MAX_RANKS = 4
NET_SHARE = 0.5  # a slow rank's gain is its net excess; jitter's gain is excesses that shortfalls cancel
ALPHA = 0.05  # the sign test's level, over every rank on a path (Bonferroni)
JITTER_QUANTILE = 0.9  # of the other ranks' per-step gains: the high end of what jitter gave them
# what "the step" of a verdict is: the critical path's length, not a rank's mean step (the headline figure)
STEP_NAME = "the job's step (its critical path, median over the steps)"


@dataclass(frozen=True, slots=True, kw_only=True)
class RootCause:
    rank: int | None  # None: no single rank
    ranks: tuple[int, ...]
    what: str | None  # COMPUTE, HOST, IDLE or SLOW_LINK
    share_pct: float | None  # the rank's own work, % of the step's critical path (median over steps)
    steps_on_path: int  # steps in which its gain passed the bar
    steps: int
    step_ms: float  # the measured step (median of the steps' lengths)
    noise_ms: float  # step-to-step standard deviation (shown; shared causes move every rank and are not the bar)
    jitter_ms: float  # the bar: the 90th percentile of the other ranks' per-step gains (what jitter gave them)
    predicted_step_ms: float | None
    predicted_gain_ms: float | None
    predicted_range_ms: tuple[float, float] | None  # the predicted step, lowest and highest over the analyzed steps
    gain_range_ms: tuple[float, float] | None = None  # its gain, lowest and highest over the analyzed steps
    ratio: float | None  # its own work / its peers' median own work, for ``what``
    peers: str  # "tensor-parallel", ...
    spread: tuple[tuple[int, float], ...]  # (rank, share % of the path), largest first
    text: str
    contenders: int = 0  # ranks in the analyzed steps' graphs: those jitter alone would let hold a step in turn
    top_ops: tuple[TopOp, ...] = ()  # the operators / kernels of its own work on the path, most time first
    # where a change mid-run split the steps (``uncertainty.regimes``): the steps of the part the verdict holds in
    # (an episode's others: the steps before and after it), the change, what changed ("The job's step", "Rank 1's
    # own work on the critical path") and the first and last step that changed
    regime: tuple[int, ...] | None = None
    change: ChangePoint | None = None
    change_of: str | None = None
    change_steps: tuple[int, int] | None = None
    changed_steps: tuple[int, ...] | None = None  # every step that changed (an episode's, in one run or several)
    work: WorkGap | None = None  # the named ranks' (else the lead's, where it has more) matrix work against peers'


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupComm:
    group: str
    kind: str
    source: str
    ranks: int
    on_path_ms: float  # its transfers on the critical path, median over steps
    share_pct: float
    size: int = 0  # its size as recorded (``ranks``: its members loaded)


@dataclass(frozen=True, slots=True, kw_only=True)
class Critical:
    paths: tuple[StepPath, ...]
    cause: RootCause
    comm: tuple[GroupComm, ...]  # largest first
    kinds: dict[str, GroupKind]
    unpaired_p2p: int = 0  # sends / recvs the path could not cross (``p2p.Links.unpaired``)
    # the most compute a rank ran per step (mean): overlap can shorten the step to no less than it
    compute_floor_ms: float = 0.0

    def saves_at_most_ms(self, on_path_ms: float) -> float:
        """What hiding ``on_path_ms`` of transfers behind compute can save at most: hidden, they still take their
        time, so the step shrinks to no less than the larger of them and the most compute a rank runs (564 ms of
        transfers on the path of a 740 ms step with 184 ms of compute read "could save at most 564 ms": 176 ms)."""
        return max(0.0, min(on_path_ms, self.cause.step_ms - max(self.compute_floor_ms, on_path_ms)))


def critical(ranks: Sequence[RankTrace], cross: CrossRank, steps: Sequence[int] | None = None,
             digests: Mapping[int, RankDigest] | None = None, periodic: Sequence[Periodic] = ()) -> Critical | None:
    """The critical paths, the root cause and communication on the path by process group; None without matched
    collectives or send/recv pairs (one rank, or no communication ran).  ``periodic``: slow steps that recur
    (``uncertainty.periodic``, beyond chance by their own test): the ranks they come first on are slower than their
    peers without ``_slower``'s test, and where the whole run names no rank, the verdict in the steps they delay
    (``regimes.in_steps``) stands where it names them."""
    wanted = set(steps) if steps is not None else None
    pairs = links(ranks, cross, wanted)
    cross = replace(cross, offsets_ns=pairs.offsets_ns or cross.offsets_ns)  # stages only send/recv aligned
    graphs = build(ranks, cross, wanted, digests, pairs)
    if not graphs:
        return None
    paths = tuple(walk(g) for g in graphs)
    kinds = group_kinds(ranks, cross.groups + pairs.groups)
    analyzed = {p.step for p in paths}  # a pattern the analyzed steps do not hold is no evidence in them
    periodic = [p for p in periodic if any(n in analyzed for _r, n in p.left_out)]
    leads = frozenset(r for p in periodic for r in p.ranks)

    def judge(g: list[StepGraph], p: list[StepPath]) -> RootCause:
        return _verdict(g, p, kinds, leads)

    cause = judge(list(graphs), list(paths))
    recur = None if cause.ranks else in_steps(graphs, paths, judge, {n for p in periodic for _r, n in p.left_out},
                                              leads)
    recur = recur if recur is None or recur[0].what != SLOW_LINK else None  # a link's speed does not recur
    # a part's verdict stands where its count of steps is beyond chance, or it held in every step of the part
    reg = None if recur else by_regime(graphs, paths, judge, cause, lambda v: not weak(v) or v.steps_on_path == v.steps)
    if recur is not None:
        at = [paths[i].step for i in recur[1]]
        their = "its" if len(recur[0].ranks) == 1 else "their"
        cause = replace(recur[0], regime=tuple(at), text=f"In the steps {their} periodic work delays ({number_list(at)}"
                        f": {len(at)} of {len(paths)} analyzed steps), {recur[0].text[0].lower()}{recur[0].text[1:]}")
    elif reg is not None:  # a change mid-run: the part whose verdict stands (``uncertainty.regimes``)
        sized = reg.change.p is None and reg.indices == list(reg.change.members)
        said = one(reg.verdict)  # "" where the verdict is not weak: nothing to say otherwise
        text = reg.text.replace(said, one_in_episode(reg.verdict), 1) if sized and said else reg.text
        cause = replace(reg.verdict, regime=reg.steps, change=reg.change, change_of=reg.what,
                        change_steps=reg.change_steps, changed_steps=reg.changed, text=text)
    part = recur[1] if recur is not None else reg.indices if reg is not None else range(len(paths))
    cause = _with_ops(cause, ranks, cross, [paths[i] for i in part])
    return Critical(paths=paths, cause=cause, comm=_comm(paths, kinds), kinds=kinds, unpaired_p2p=pairs.unpaired)


def _with_ops(c: RootCause, ranks: Sequence[RankTrace], cross: CrossRank, paths: Sequence[StepPath]) -> RootCause:
    """The named rank's top operators / kernels on the path, in its record and its sentence."""
    rt = next((r for r in ranks if c.ranks and r.rank == c.ranks[0]), None)
    if rt is None:
        return c
    top = top_ops(rt, paths, rt.base_time_ns + cross.offsets_ns.get(rt.rank, 0))
    if not top:
        return c
    who = "Its" if len(c.ranks) == 1 and c.change is None else f"Rank {rt.rank}'s"  # a regime's text ends on another
    named = ", ".join(f"{t.name} {t.share_pct:.0f}%" for t in top)
    return replace(c, top_ops=top, text=f"{c.text} {who} compute on the path: {named}.")


def _comm(paths: Sequence[StepPath], kinds: Mapping[str, GroupKind]) -> tuple[GroupComm, ...]:
    per = [p.comm_ns() for p in paths]
    step = float(np.median([p.length_ns for p in paths])) or 1.0
    out = []
    for name in sorted({k for d in per for k in d}):
        ms = float(np.median([d.get(name, 0) for d in per])) / 1e6
        k = kinds.get(name)
        out.append(GroupComm(group=name, kind=k.kind if k else "data", source=k.source if k else "membership",
                             ranks=len(k.ranks) if k else 0, on_path_ms=ms, share_pct=100 * ms * 1e6 / step,
                             size=k.size if k else 0))
    return tuple(sorted(out, key=lambda c: -c.on_path_ms))


def _gains(graphs: Sequence[StepGraph], ranks: Sequence[int], which: Sequence[str]) -> np.ndarray:
    """Per step, what bringing ``ranks``' own ``which`` to their peers' median shortens it by, each step starting
    where the replay of the step before, from its measured starts, ended it (``carried_start``)."""
    out = []
    prev: tuple[StepGraph, np.ndarray] | None = None
    for g in graphs:
        parts = peer_parts(g, ranks, which)
        start = carried_start(g, *(prev or (None, None)))
        out.append(max(length(g, replay(g)) - length(g, replay(g, parts, start), start), 0))
        prev = (g, replay(g, parts))
    return np.array(out, dtype=np.float64)


def _slower(graphs: Sequence[StepGraph], rank: int, gain: np.ndarray, alpha: float, beyond: np.ndarray) -> bool:
    """Is the rank's own work slower than its peers', beyond chance?  Either at the collectives it joins (a one-sided
    sign test over every one: longer than its peers' median there more often than half the time, at ``alpha``), or
    in total: in every step whose gain stands out (``beyond``) its own work exceeds its peers' median by
    ``NET_SHARE`` of its gain or more (a few long stalls; under jitter the excesses and shortfalls of a step cancel
    while the gain, counting only excesses, stays positive), its step end's excess in the step before counted where
    that carries into this step's gain; the other steps claim nothing.  Steps picked for their gain favour a net
    excess: ``stands`` and the count of steps held still guard against jitter (under lognormal jitter no rank of 2 or
    8 was named in 150 seeded runs of 6 or 12 steps, as before)."""
    longer = shorter = 0
    net = []
    tail = 0.0  # its step end's excess in the step before, where that step's end carries into this one's waits
    for i, g in enumerate(graphs):
        own, med, ended = own_and_peer(g, rank)
        longer += int((own > med).sum())
        shorter += int((own < med).sum())
        carried = tail if i and carries(g, graphs[i - 1]) else 0.0
        net.append(float((own - med).sum()) + carried)
        tail = max(float(own[-1] - med[-1]), 0.0) if ended else 0.0  # its step end's excess, where compared
    n = longer + shorter
    p = sum(math.comb(n, k) for k in range(longer, n + 1)) / 2 ** n if n else 1.0
    return p <= alpha or bool(beyond.any() and np.all((np.array(net) >= NET_SHARE * gain)[beyond]))


def _verdict(graphs: Sequence[StepGraph], paths: Sequence[StepPath], kinds: Mapping[str, GroupKind],
             periodic: frozenset[int] = frozenset()) -> RootCause:
    lens = np.array([p.length_ns for p in paths], dtype=np.float64)
    noise = float(np.std(lens, ddof=1)) if lens.size > 1 else 0.0
    shares = _shares(paths)
    # per rank and step: its gain where replayed, else its own work on the path (a bound of its gain)
    bound = {r: np.array([p.own_ns().get(r, 0) for p in paths], dtype=np.float64) for r, _ in shares}
    gains = {r: _gains(graphs, (r,), (COMPUTE, HOST, IDLE)) for r, _ in shares[:CANDIDATES]}
    per = {**bound, **gains}
    med = {r: float(np.median(v)) for r, v in gains.items()}
    base = RootCause(rank=None, ranks=(), what=None, share_pct=None, steps_on_path=0, steps=len(paths),
                     step_ms=float(np.median(lens)) / 1e6, noise_ms=noise / 1e6, jitter_ms=0.0,
                     predicted_step_ms=None, predicted_gain_ms=None, predicted_range_ms=None, ratio=None, peers="",
                     spread=tuple(shares[:5]), text="")
    on_path = {r: float(np.median(v)) for r, v in bound.items()}
    by_path = sorted(on_path, key=lambda r: (-on_path[r], r))
    n_ranks = len({int(r) for g in graphs for r in g.ranks.tolist()})
    base = replace(base, contenders=n_ranks)
    why = ""  # why the likeliest rank is not named
    for k in range(1, min(MAX_RANKS, max(n_ranks // 2, 1)) + 1):
        # one rank: the largest gain; several: the most on the path (alone each gains little while the other is slow)
        named = sorted(med, key=lambda r: (-med[r], r))[:1] if k == 1 else by_path[:k]
        if len(named) < k:
            break
        rest = [v for r, v in per.items() if r not in named]
        jitter = float(np.quantile(np.concatenate(rest), JITTER_QUANTILE)) if rest else 0.0
        joint = gains[named[0]] if k == 1 else _gains(graphs, named, (COMPUTE, HOST, IDLE))
        if k == 1:
            stands = med[named[0]] > STANDOUT * jitter
        else:  # each member's own work on the path against the others' (like with like)
            others = [v for r, v in bound.items() if r not in named]
            path_bar = float(np.quantile(np.concatenate(others), JITTER_QUANTILE)) if others else 0.0
            stands = (min(on_path[r] for r in named) > STANDOUT * path_bar
                      and float(np.median(joint)) > STANDOUT * jitter)
        best_other = np.max(np.vstack(rest), axis=0) if rest else np.zeros(len(paths))
        held = int((joint > STANDOUT * best_other).sum())
        slower = stands and all(r in periodic or _slower(graphs, r, per[r] if k == 1 else joint / k,
                                                         ALPHA / max(len(shares), 1), joint > STANDOUT * jitter)
                                for r in named)
        large = float(np.median(joint)) >= MIN_GAIN_FRACTION * float(np.median(lens))
        if slower and 2 * held > len(paths) and large:
            return _name(graphs, base, named, joint, held=held, jitter=jitter, shares=dict(shares), lens=lens,
                         kinds=kinds)
        if k == 1:  # why the likeliest rank is not named, against the others' jitter (not its own)
            why = (f"bringing rank {named[0]}, the likeliest, to its peers' median speed would shorten {STEP_NAME}, "
                   f"{float(np.median(lens)) / 1e6:.2f} ms, by {med[named[0]] / 1e6:.2f} ms a step (the median), "
                   + ("not" if not stands else "beyond") + f" {STANDOUT:.0f}x what the other ranks' slowness cost "
                   + (f"(up to {jitter / 1e6:.2f} ms in a step, 90th percentile)" if round(jitter / 1e6, 2) > 0 else
                      "(nothing)")
                   + ("" if not stands else ", but it is not slower than its peers beyond chance" if not slower else
                      f", but 2x every other rank's gain in only {held} of {len(paths)} steps"
                      if 2 * held <= len(paths) else
                      ", under 2% of the step"))
            base = replace(base, jitter_ms=jitter / 1e6)
    link = slow_link(graphs, lens)
    if link is not None:
        return _name_link(graphs, base, link, paths, lens, kinds)
    return replace(base, text=_no_single(base, why))


def _range_ms(per_step_ns: np.ndarray) -> tuple[float, float] | None:
    """The lowest and highest of a per-step figure (ns) in ms; None from one step: one replay has no range (it
    read [297.07, 297.07] beside a 53% gain, as if certain)."""
    if per_step_ns.size < 2:
        return None
    return float(per_step_ns.min()) / 1e6, float(per_step_ns.max()) / 1e6


def _name_link(graphs: Sequence[StepGraph], base: RootCause, link: SlowLink, paths: Sequence[StepPath],
               lens: np.ndarray, kinds: Mapping[str, GroupKind]) -> RootCause:
    """A rank named for its slow link: its transfers on the path as its share, the replay with them cut."""
    pred = lens - link.gains
    share = float(np.median([100 * sum(s.duration_ns for s in p.segments if s.kind == COMM and s.group in link.groups)
                             / max(p.length_ns, 1) for p in paths]))
    cause = replace(base, rank=link.rank, ranks=(link.rank,), what=SLOW_LINK, share_pct=share,
                    steps_on_path=link.held, jitter_ms=link.jitter / 1e6,
                    # the step less the gain, both medians over the steps: the sentence adds up
                    predicted_step_ms=float(np.median(lens) - np.median(link.gains)) / 1e6,
                    predicted_gain_ms=float(np.median(link.gains)) / 1e6,
                    predicted_range_ms=_range_ms(pred), gain_range_ms=_range_ms(link.gains), ratio=link.ratio,
                    peers=ratio_to_peers(graphs, link.rank, COMPUTE, kinds)[1])
    lo, hi = cause.gain_range_ms or (0.0, 0.0)
    band = f", {lo:.2f}-{hi:.2f} over the steps" if cause.steps > 1 else ""
    ops = "/".join(link.ops[:2]) or "collective"
    groups = ", ".join(link.groups[:3]) + (" ..." if len(link.groups) > 3 else "")
    text = (f"Rank {link.rank} {holds(cause)} the job back: a slow link, its {ops} transfers take {link.ratio:.1f}x "
            f"its peers' on the same collectives (process groups {groups}, each against the same collectives of its "
            f"sibling groups, waits removed; the one rank they share), {share:.0f}% of the step's critical path; "
            f"beyond the others' transfer jitter in {link.held} of {cause.steps} steps{one(cause)}. At its peers' "
            f"transfer speed {STEP_NAME} would take {cause.predicted_step_ms:.2f} ms instead of {cause.step_ms:.2f} "
            f"ms (-{cause.predicted_gain_ms:.2f} ms{band}); the other ranks' longer transfers cost up to "
            f"{link.jitter / 1e6:.2f} ms in a step (90th percentile).")
    return replace(cause, text=text)


def _name(graphs: Sequence[StepGraph], base: RootCause, named: Sequence[int], joint: np.ndarray, *, held: int,
          jitter: float, shares: Mapping[int, float], lens: np.ndarray, kinds: Mapping[str, GroupKind]) -> RootCause:
    first = named[0]
    what = max((COMPUTE, HOST, IDLE), key=lambda w: float(np.median(_gains(graphs, named, (w,)))))
    pred = lens - joint
    ratio, peers = ratio_to_peers(graphs, first, what, kinds)
    cause = replace(base, rank=first if len(named) == 1 else None, ranks=tuple(named), what=what,
                    share_pct=sum(shares.get(r, 0.0) for r in named), steps_on_path=held, jitter_ms=jitter / 1e6,
                    predicted_step_ms=float(np.median(lens) - np.median(joint)) / 1e6,  # adds up, as above
                    predicted_gain_ms=float(np.median(joint)) / 1e6,
                    predicted_range_ms=_range_ms(pred), gain_range_ms=_range_ms(joint), ratio=ratio, peers=peers)
    return replace(cause, text=_named(cause))


def _shares(paths: Sequence[StepPath]) -> list[tuple[int, float]]:
    """Per rank, the median over steps of its own work's share of the path (%), largest first."""
    per = [p.own_ns() for p in paths]
    ranks = {r for d in per for r in d}
    out = [(r, float(np.median([100 * d.get(r, 0) / max(p.length_ns, 1) for d, p in zip(per, paths, strict=True)])))
           for r in ranks]
    return sorted(out, key=lambda x: (-x[1], x[0]))


def _named(c: RootCause) -> str:
    lo, hi = c.gain_range_ms or (0.0, 0.0)
    band = f", {lo:.2f}-{hi:.2f} over the steps" if c.steps > 1 else ""
    after = (f"At its peers' median speed {STEP_NAME} would take {c.predicted_step_ms:.2f} ms instead of "
             f"{c.step_ms:.2f} ms (-{c.predicted_gain_ms:.2f} ms{band}); the other ranks' slowness cost "
             + (f"up to {c.jitter_ms:.2f} ms in a step (90th percentile)." if round(c.jitter_ms, 2) > 0 else
                "nothing in any step."))
    if c.rank is None:
        who = ", ".join(str(r) for r in c.ranks[:-1]) + f" and {c.ranks[-1]}"
        return (f"Ranks {who} {holds(c, 'hold')} the job back together: {c.share_pct:.0f}% of the step's critical "
                f"path, mostly {c.what}; beyond the others' jitter in {c.steps_on_path} of {c.steps} steps{one(c)}. "
                + after.replace("its peers'", "their peers'"))
    peers = f"its {SHORT[_kind_of(c.peers)]} peers'" if c.peers else "its peers'"
    ratio = "" if c.ratio is None else (f", {c.what} {c.ratio:.1f}x {peers}" if np.isfinite(c.ratio)
                                        else f", {c.what} where its peers had none")
    return (f"Rank {c.rank} {holds(c)} the job back: {c.share_pct:.0f}% of the step's critical path{ratio}; beyond "
            f"the others' jitter in {c.steps_on_path} of {c.steps} steps{one(c)}. {after}")


def _kind_of(name: str) -> str:
    return next(k for k, v in NAMES.items() if v == name)


def _no_single(c: RootCause, why: str) -> str:
    spread = ", ".join(f"rank {r} {s:.0f}%" for r, s in c.spread[:4]) or "none"
    why = why or (f"bringing any one rank to its peers' median speed would not shorten {STEP_NAME}, {c.step_ms:.2f} "
                  f"ms, beyond the run's own jitter ({STANDOUT:.0f}x what the other ranks' slowness cost) in most "
                  "steps and by 2% or more, with that rank slower than its peers more often than chance")
    return f"No single rank holds the job back: {why}. Shares of the critical path: {spread}."
