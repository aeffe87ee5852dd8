"""The sentences of the cross-rank critical path: the root cause (the report's first finding) and communication on
the path by parallelism dimension, with the most that overlapping it could save."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ...numlist import ranks_text
from ..section import EXPOSED, Finding
from ..uncertainty.periodic import Periodic, describe_one
from .chance import weak
from .environment import apart_sentence
from .peers import COMPUTE, HOST, IDLE
from .pgkind import BESIDE, DATA, DDP_GROUP, EMBEDDING, EXPERT, FSDP_GROUP, NAMES, PIPELINE, SHORT, TENSOR
from .rootcause import Critical, GroupComm, RootCause

MIN_COMM_SHARE_PCT = 5.0
# points by which the named rank's loop thread must out-wait its peers' for a CPU before contention on its host is
# named: ranks of one job wait alike within 2-5 points (the README demo, quiet 20-23%, beside an unpinned busy
# process 43-52%); pinned to cores, the rank beside a busy process waited 56% and its peer 9%
WAIT_GAP_PTS = 10.0
_HOW = {TENSOR: "sequence parallelism, async tensor parallelism or Transformer Engine's communication overlap",
        DATA: "overlapping the gradient all-reduces with the backward pass (DDP bucket size, FSDP prefetch)",
        PIPELINE: "more micro-batches or an interleaved schedule",
        # all-to-all serves experts and sharded embeddings alike: where the trace shows neither (or both), both
        EXPERT: "overlapping the all-to-all with compute: DeepEP's overlapped dispatch/combine for experts, a "
                "pipelined sparse-data-dist (TorchRec's TrainPipelineSparseDist) for sharded embeddings",
        EMBEDDING: "a pipelined sparse-data-dist (TorchRec's TrainPipelineSparseDist), which sends the next "
                   "batch's features while this batch computes"}
_DOING = {"compute": "Its own compute is slower than its peers' (a slower or throttled GPU/CPU, more work "
                     "assigned to it, or a noisy neighbour on its host).",
          "launch/host": "Its device waits for its host between operations (launch overhead, Python, "
                         "synchronisations): check that rank's CPU load and host-side work.",
          "idle before collectives": "It is idle before it joins collectives (nothing runs: data loading, host-side "
                                     "stalls, sleeps): check its DataLoader (num_workers, pin_memory) and that "
                                     "DistributedSampler gives every rank equal shards.",
         "slow link": "Its transfers are slower than its peers' on the same collectives, not its arrivals: check its "
                      "network path (NIC, cable, switch port, PCIe / NVLink placement) and whether another job shares "
                      "its links."}


# idle before collectives where its peers are not data-parallel: they read the same batch (tensor-parallel ranks
# take one micro-batch together), so no sampler shard differs; the gaps are the rank's own host-side work
_IDLE_SHARED = ("It is idle before it joins collectives (nothing runs on it meanwhile): its {peers} peers work on "
                "the same batch, so no data shard sets it apart; check that rank's host-side stalls (Python work, "
                "synchronizations, garbage collection, logging, checkpoint I/O) and CPU load.")


def root_cause_finding(crit: Critical, waits: Mapping[int, float] | None = None, gpu: bool = False,
                       envs: Mapping[int, Mapping[str, str]] | None = None,
                       periodic: Sequence[Periodic] = ()) -> Finding:
    """The root cause's sentence; ``waits``: each rank's loop thread's CPU wait (% of its ready time:
    ``uncertainty.hostload.wait_by_rank``), the evidence for contention on the named rank's host; ``gpu``: the ranks
    compute on GPUs (where only a host-bound cause is the thread's); ``envs``: each rank's recorded environment
    (the sidecar's ``env``), where the named rank's differs from all its peers' (``crossrank.environment``);
    ``periodic``: the run's slow steps that recur (``uncertainty.periodic``), what the named rank does where it
    leads them."""
    c = crit.cause
    if not c.ranks:
        return Finding("info", c.text + ("" if gpu else unnamed_contention(c, waits or {})) + work_lead(c)
                       + "".join(" " + recurring(p, ()) for p in periodic))
    gain_pct = 100 * (c.predicted_gain_ms or 0) / c.step_ms if c.step_ms else 0.0
    doing = _DOING.get(c.what or "", "")
    if c.what == IDLE and c.peers and c.peers != NAMES[DATA]:  # its peers share its batch: no shard to even out
        doing = _IDLE_SHARED.format(peers=c.peers)
    if len(c.ranks) > 1:  # several ranks named together
        doing = doing.replace("It is", "They are").replace("Its ", "Their ").replace("that rank's", "those ranks'")
        doing = doing.replace("before it joins", "before they join").replace("check its", "check their")
        doing = doing.replace("on it meanwhile): its", "on them meanwhile): their").replace("sets it apart",
                                                                                           "sets them apart")
    # where its idle or host gaps recur, what it does is what recurs, not a data loader's or a launch's
    leads = c.what in (IDLE, HOST) and any(set(c.ranks) <= set(p.ranks) for p in periodic)
    doing = " ".join(x for x in (work_doing(c) or ("" if leads else doing), *(recurring(p, c.ranks) for p in periodic))
                     if x)
    level = "high" if gain_pct >= 10 and not weak(c) else "medium"  # one step, or a count jitter gives: weaker
    env = apart_sentence(c.ranks[0], envs or {}) if len(c.ranks) == 1 else ""
    more = f"{doing}{contention(c, waits or {}, gpu)}"
    if c.change is not None and len(c.ranks) == 1:  # after "...; after it rank 1 held the job back": name the rank
        more = more.replace("It is", f"Rank {c.ranks[0]} is").replace("Its ", f"Rank {c.ranks[0]}'s ").replace(
            "It was", f"Rank {c.ranks[0]} was")
    return Finding(level, f"{c.text} {more}{env}".strip())


def recurring(p: Periodic, named: Sequence[int]) -> str:
    """What recurs (``uncertainty.periodic``): the named ranks' own periodic slow steps where they lead them, else
    the run's."""
    own = list(named) == list(p.ranks)
    who = ("Its" if len(named) == 1 else "Their") if own else "The run's"
    verb = "does" if len(p.ranks) == 1 else "do"
    doer = ("it does" if len(named) == 1 else "they do") if own else f"{ranks_text(p.ranks, limit=8)} {verb}"
    return (f"{who} slow steps recur: {describe_one(p)}: work {doer} every {p.period} steps that the others wait for "
            "(a checkpoint, an evaluation, logging, a metric's host-side reduction, a garbage collection): make it "
            "asynchronous, spread it over the ranks, or do it less often.")


def _flop(gflop: float) -> str:
    return f"{gflop / 1e3:.2f} TFLOP" if gflop >= 1e3 else f"{gflop:.2f} GFLOP" if gflop >= 1 else \
        f"{gflop * 1e3:.1f} MFLOP"


BEYOND_WORK = 1.25  # its compute's ratio to its peers' beyond its work's by this factor: slower too, not only busier
# why a rank runs more matrix products than its peers, by what its peers are (``work.peers_of``)
_UNEVEN = {DATA: "an uneven batch, sequence length or image size sets {them} apart: check that DistributedSampler "
                 "gives every rank equal shards, and padding or bucketing by length or size",
           TENSOR: "an uneven split of the layers sets {them} apart: check how the tensor-parallel shards divide the "
                   "heads and hidden dimensions",
           None: "an uneven batch, sequence length, pipeline partition or expert routing sets {them} apart: check the "
                 "samplers' shards, the stages' partition and the routing's balance"}
# how a group's kind was told (``pgkind.GroupKind.source``), in a finding's words
_SOURCE_WORDS = {"description": "its description", DDP_GROUP: "DDP's process group (the sidecars)",
                 FSDP_GROUP: "FSDP2's mesh groups (the sidecars)",
                 BESIDE: "the data-parallel groups the sidecars name, which it crosses",
                 "membership": "its membership pattern", "operators": "its operators"}
# what the count leaves out: the same matrix products may still hide other work that differs
_LEFT_OUT = ("work the count leaves out (products fused into custom or generated kernels, convolutions without "
             "recorded strides)")
_UNCOUNTED = f"unless {_LEFT_OUT} differs"


def work_doing(c: RootCause) -> str:
    """What the named ranks were doing, told by their matrix work against their peers' (``work``): given more work
    (the cause where its time is compute; beside it where the time shows host or idle gaps), or slower on no more
    work; "" where it tells neither, for a slow link, or where no shapes were recorded."""
    w = c.work
    if w is None or c.what not in (COMPUTE, HOST, IDLE):
        return ""
    one = len(c.ranks) == 1
    it, its, It = ("it", "its", "It") if one else ("them", "their", "They")
    peers = f"{its} {SHORT[w.kind]} peers" if w.kind in SHORT else f"{its} peers"
    of = f"from the operators' recorded shapes over {w.steps} step{'s' if w.steps != 1 else ''}"
    figures = (f"{its} matrix products come to {'' if one else 'up to '}{_flop(w.ranks_gflop)} per step against "
               f"{peers}' {_flop(w.peers_gflop)} (median; {w.ratio:.2f}x, {of})")
    uneven = _UNEVEN.get(w.kind, _UNEVEN[None]).format(them=it)
    was = "was" if one else "were"
    if w.more and c.what != COMPUTE:  # its time shows gaps, not compute: the extra work is beside them, no cause
        return f"{It} {was} also given more work than {peers}: {figures}; {uneven}."
    if w.more and c.ratio is not None and np.isfinite(c.ratio) and c.ratio > BEYOND_WORK * w.ratio:
        return (f"{It} {was} given more work than {peers}: {figures}, yet {its} compute took {c.ratio:.1f}x "
                f"theirs, more than the extra products explain: {_LEFT_OUT} grew more, or {it.replace('them', 'they')} "
                f"{'is' if one else 'are'} also slower (a slower or throttled GPU/CPU, or a noisy neighbour on "
                f"{its} host); and {uneven}.")
    if w.more:
        return f"{It} {was} given more work than {peers}: {figures}; {uneven}."
    if w.no_more and c.what == COMPUTE:
        return (f"{It} {'is' if one else 'are'} slower than {peers} on no more work ({figures}): a slower or "
                f"throttled GPU/CPU, or a noisy neighbour on {its} host, {_UNCOUNTED}.")
    return ""


def work_lead(c: RootCause) -> str:
    """Where no rank is named but a rank was given more matrix work than its peers (``work.most_work``: the one with
    the largest ratio), a sentence giving that lead with its share of the path, the verdict itself unchanged."""
    w = c.work
    if c.ranks or w is None or not w.more or w.rank is None:
        return ""
    share = dict(c.spread).get(w.rank)
    on_path = f", with {share:.0f}% of the path," if share is not None else ""
    peers = f"its {SHORT[w.kind]} peers" if w.kind in SHORT else "its peers"
    return (f" A lead: rank {w.rank}{on_path} was given more work than {peers}: its matrix products come to "
            f"{_flop(w.ranks_gflop)} per step against {peers}' {_flop(w.peers_gflop)} (median; {w.ratio:.2f}x, from "
            f"the operators' recorded shapes over {w.steps} step{'s' if w.steps != 1 else ''}); "
            f"{_UNEVEN.get(w.kind, _UNEVEN[None]).format(them='it')}. What it costs hides in this run's jitter (trace "
            "more steps to tell).")


def contention(c: RootCause, waits: Mapping[int, float], gpu: bool = False) -> str:
    """Where the named ranks' slowness can be their CPUs' (any cause on CPU runs, gloo's transfers being CPU work
    too; on GPUs launch/host or idle gaps, not kernels or links) and their loop thread waited for a CPU
    ``WAIT_GAP_PTS`` more than their peers' (median), a sentence saying so; else nothing (ranks that wait alike say
    nothing of where the contention is)."""
    if gpu and c.what not in (HOST, IDLE):
        return ""
    named = [waits[r] for r in c.ranks if r in waits]
    peers_pct = _peers_below(max(named, default=0.0), [w for r, w in waits.items() if r not in c.ranks])
    if not named or peers_pct is None:
        return ""
    if len(c.ranks) == 1:
        return (f" Its training thread waited for a CPU {max(named):.0f}% of the time it was ready to run, its peers' "
                f"{peers_pct:.0f}% (median): its CPUs were taken by other work or by more threads than cores (check "
                "what else runs there and the ranks' CPU binding).")
    return (f" Their training threads waited for a CPU up to {max(named):.0f}% of the time they were ready to run, "
            f"their peers' {peers_pct:.0f}% (median): their CPUs were taken by other work or by more threads than "
            "cores (check what else runs there and the ranks' CPU binding).")


def unnamed_contention(c: RootCause, waits: Mapping[int, float]) -> str:
    """Where no rank is named but the rank with the largest share of the path waited for a CPU ``WAIT_GAP_PTS`` more
    than the others (median), a sentence giving that lead, the verdict itself unchanged.  CPU runs only (the caller):
    on GPUs a thread's wait slows the step only where the rank is host-bound, which no verdict says here."""
    if not c.spread or c.spread[0][0] not in waits:
        return ""
    rank, share = c.spread[0]
    others_pct = _peers_below(waits[rank], [w for r, w in waits.items() if r != rank])
    if others_pct is None:
        return ""
    return (f" A lead: rank {rank}, with the largest share of the path ({share:.0f}%), waited for a CPU "
            f"{waits[rank]:.0f}% of the time its training thread was ready to run, the others {others_pct:.0f}% "
            "(median): its CPUs are taken by other work or by more threads than cores, a slowness this run's jitter "
            "hides in too many steps to name it the cause (trace more steps, or check what else runs there).")


def _peers_below(wait_pct: float, peers: list[float]) -> float | None:
    """The peers' median CPU wait where ``wait_pct`` is at least ``WAIT_GAP_PTS`` above it, else None."""
    if not peers:
        return None
    median = float(np.median(peers))
    return median if wait_pct - median >= WAIT_GAP_PTS else None


# data-parallel communication's remedy by the wrapper the trace shows (``data_how``)
_HOW_DDP = "overlapping the gradient all-reduces with the backward pass: DDP's bucket size"
_HOW_FSDP = "FSDP2's prefetch (set_modules_to_forward_prefetch / set_modules_to_backward_prefetch)"
_HOW_FSDP_GLOO = "gloo"  # FSDP2 over gloo: its collectives block the training thread (``_remedy``)


def data_how(fsdp: bool, ddp: bool, gloo: bool) -> str:
    """How data-parallel communication on the path could overlap with compute, for the wrapper the run uses:
    FSDP2 over gloo blocks the training thread (no setting overlaps it, as its replay models), FSDP2 on NCCL
    prefetches, DDP sizes its buckets; the generic remedy where the trace shows neither."""
    if fsdp:
        return _HOW_FSDP_GLOO if gloo else _HOW_FSDP
    return _HOW_DDP if ddp else _HOW[DATA]


def comm_findings(crit: Critical, how_data: str | None = None) -> list[Finding]:
    """Per parallelism dimension with a material share of the path: its transfers on the path and the bound;
    ``how_data``: the data-parallel remedy for the run's wrapper (``data_how``)."""
    by_kind: dict[str, list[GroupComm]] = {}
    for g in crit.comm:
        by_kind.setdefault(g.kind, []).append(g)
    out = []
    for kind, groups in sorted(by_kind.items(), key=lambda kv: -sum(g.on_path_ms for g in kv[1])):
        ms = sum(g.on_path_ms for g in groups)
        share = sum(g.share_pct for g in groups)
        if share < MIN_COMM_SHARE_PCT:
            continue
        src = ("its all-to-alls beside the trace's embedding-table operators" if kind == EMBEDDING else
               " and ".join(dict.fromkeys(_SOURCE_WORDS.get(g.source, _SOURCE_WORDS["membership"]) for g in groups)))
        names = ", ".join(f"{g.group} ({g.size} ranks, {g.ranks} loaded)" if g.size > g.ranks else
                          f"{g.group} ({g.ranks} ranks)" for g in groups[:3]) + (" ..." if len(groups) > 3 else "")
        how = how_data if kind == DATA and how_data else _HOW[kind]
        out.append(Finding("high" if share >= 20 else "medium",
                           f"{NAMES[kind].capitalize()} ({SHORT[kind]}) communication on the critical path: "
                           f"{ms:.2f} ms per step ({share:.0f}% of the step), process group {names}, kind from "
                           f"{src}. {_remedy(how, ms, crit.saves_at_most_ms(ms))}", EXPOSED))
    return out


def _remedy(how: str, ms: float, most: float | None = None) -> str:
    """The remedy and what it can save at most: ``most``, the transfers on the path bounded by the step less the
    most compute a rank runs (``Critical.saves_at_most_ms``)."""
    most = ms if most is None else most
    bound = (f" (hidden, the {ms:.2f} ms of transfers still take their time: the step shrinks to no less than "
             "them and the most compute a rank runs)" if most < ms - 0.005 else
             " (the path may then run through other work)")
    if how == _HOW_FSDP_GLOO:
        return ("On gloo FSDP2's collectives run on the training thread, so no FSDP setting hides them (the FSDP "
                f"section's replay); on a GPU backend (NCCL) they overlap with compute on their own stream, up to "
                f"{most:.2f} ms per step{bound}.")
    return f"Overlapping it with compute ({how}) could save at most {most:.2f} ms per step{bound}."


def unpaired_finding(n: int) -> list[Finding]:
    """Sends / recvs the critical path could not cross (``n``), said once."""
    if not n:
        return []
    return [Finding("info", f"{n} send/recv calls of the analyzed steps could not be paired with their other side (the "
                            "trace names no peer - record_shapes=True records it - or the other side's trace lacks "
                            "it): the critical path does not cross them.")]
