"""Send/recv pairs on the cross-rank critical path: hand-built GPipe pipelines (every micro-batch forward, then every
backward), one slow stage named with what it was doing, pure jitter naming no rank."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from builders import collective, lane, rank_trace, run

from commprof.analysis.analyze import analyze
from commprof.analysis.crossrank.critgraph import build, length, replay
from commprof.analysis.crossrank.critpath import COMM, OWN
from commprof.analysis.crossrank.matching import cross_rank
from commprof.analysis.crossrank.p2p import links
from commprof.analysis.crossrank.rootcause import COMPUTE, IDLE, critical
from commprof.model import Run

US = 1_000
Comp = Callable[[int, int, int, int], int]  # (rank, step, micro-batch, 0 forward / 1 backward) -> ns


class _Pipe:
    """The ranks' records while the schedule is laid out."""

    def __init__(self, stages: int, xfer: int, eager: int | None, peer: bool) -> None:
        self.n, self.xfer, self.eager, self.peer = stages, xfer, eager, peer
        self.waiting: dict[tuple[int, int], int] = {}  # rendezvous: (sender, receiver) -> its send's index
        self.ready = [0] * stages
        self.work: dict[int, list[tuple[int, int, int]]] = {r: [] for r in range(stages)}
        self.colls: dict[int, list] = {r: [] for r in range(stages)}

    def _p2p(self, r: int, op: str, start: int, end: int, step: int, peer: int) -> None:
        self.colls[r].append(collective(start, end, op=op, step=step, group="0", group_size=self.n,
                                        peer=peer if self.peer else None))

    def recv(self, r: int, src: int, sent: int, step: int) -> None:
        t = self.ready[r]
        end = max(t, sent) + self.xfer  # released by the later of its own post and the send
        self._p2p(r, "recv", t, end, step, src)
        self.ready[r] = end
        i = self.waiting.pop((src, r), None)
        if i is not None:  # the send ends with its recv
            c = self.colls[src][i]
            self.colls[src][i] = collective(c.start_ns, end, op="send", step=step, group="0", group_size=self.n,
                                            peer=c.peer)
            self.ready[src] = end

    def send(self, r: int, dst: int, step: int) -> int:
        t = self.ready[r]
        if self.eager is None:  # rendezvous: it ends with its recv (``recv`` sets it)
            self._p2p(r, "send", t, t, step, dst)
            self.waiting[(r, dst)] = len(self.colls[r]) - 1
            return t
        self._p2p(r, "send", t, t + self.eager, step, dst)  # eager: it does not wait for the recv
        self.ready[r] = t + self.eager
        return t

    def compute(self, r: int, d: int, step: int, idle: int) -> None:
        t = self.ready[r] + idle
        self.work[r].append((t, t + d, step))
        self.ready[r] = t + d


def gpipe(stages: int, mbs: int, steps: int, comp: Comp, *, xfer: int = 50 * US, eager: int | None = 5 * US,
          sleep: Callable[[int], int] = lambda r: 0, peer: bool = True, shift_ns: int = 0) -> Run:
    """``stages`` ranks, one stage each; per step every micro-batch forward (recv from the previous stage, compute,
    send to the next), then every backward in reverse (gradients the other way); a send ends ``eager`` ns after its
    issue, or (None) with its recv (a rendezvous, as NCCL's); a rank sleeps ``sleep(rank)`` ns
    before each of its computations.  Each rank's step ends after its last backward.  ``peer``: the trace records
    each call's peer (else only the group)."""
    p = _Pipe(stages, xfer, eager, peer)
    spans: dict[int, list[tuple[int, int, int]]] = {r: [] for r in range(stages)}
    last = stages - 1
    for s in range(steps):
        start = list(p.ready)
        sent: dict[tuple[int, int], int] = {}
        for k in range(mbs):
            for r in range(stages):
                if r > 0:
                    p.recv(r, r - 1, sent[(r - 1, k)], s)
                p.compute(r, comp(r, s, k, 0), s, sleep(r))
                if r < last:
                    sent[(r, k)] = p.send(r, r + 1, s)
        for k in reversed(range(mbs)):
            for r in reversed(range(stages)):
                if r < last:
                    p.recv(r, r + 1, sent[(r + 1, k)], s)
                p.compute(r, comp(r, s, k, 1), s, sleep(r))
                if r > 0:
                    sent[(r, k)] = p.send(r, r - 1, s)
        for r in range(stages):
            p.ready[r] += 10 * US
            spans[r].append((s, start[r], p.ready[r]))
    ranks = []
    for r in range(stages):  # rank r's clock is r * shift_ns ahead
        sh = r * shift_ns
        colls = [collective((c.start_ns or 0) + sh, (c.end_ns or 0) + sh, op=c.op, step=c.step, group="0",
                            group_size=stages, peer=c.peer) for c in p.colls[r]]
        ranks.append(rank_trace(r, steps=[(n, a + sh, b + sh) for n, a, b in spans[r]],
                                compute=lane([(a + sh, b + sh) for a, b, _ in p.work[r]], [st for *_, st in p.work[r]]),
                                collectives=colls, world_size=stages))
    return run(*ranks)


def _crit(rn: Run):
    crit = critical(rn.ranks, cross_rank(rn.ranks))
    assert crit is not None
    return crit


def _jit(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def test_sends_are_matched_to_their_recvs_and_the_replay_reproduces_the_step():
    rng = np.random.default_rng(0)
    rn = gpipe(3, 4, 2, lambda r, s, k, ph: int(1_000 * US * (1 + ph) * _jit(rng, 0.95, 1.05)))
    cross = cross_rank(rn.ranks)
    ln = links(rn.ranks, cross, None)
    # forward 0->1, 1->2; backward 2->1, 1->0: four directed links, 4 micro-batches x 2 steps each
    assert sorted(g.ranks for g in ln.groups) == [(0, 1), (1, 0), (1, 2), (2, 1)]
    assert all(g.arrival_ns.shape == (8, 2) for g in ln.groups)
    # a send that ended before its recv was posted did not wait for it (eager); the others may have
    assert all(np.array_equal(s, g.end_ns[:, 0] < g.arrival_ns[:, 1]) for g, s in zip(ln.groups, ln.solo, strict=True))
    assert any(bool(s.any()) for s in ln.solo)
    graphs = build(rn.ranks, cross, None, None, ln)
    assert len(graphs) == 2
    for g in graphs:  # unchanged, the replay gives every rank's measured step end
        assert np.array_equal(replay(g), g.stop)
        assert length(g, replay(g)) == int((g.stop - g.start).max())


@pytest.mark.parametrize("stages,slow", [(2, 1), (2, 0), (4, 2), (4, 0), (4, 3)])
def test_the_slow_stage_is_named_with_what_it_was_doing(stages: int, slow: int):
    rng = np.random.default_rng(stages * 10 + slow)
    rn = gpipe(stages, 4, 3, lambda r, s, k, ph: int(1_000 * US * (1 + ph) * (2.0 if r == slow else 1.0)
                                                     * _jit(rng, 0.99, 1.01)))
    crit = _crit(rn)
    c = crit.cause
    assert c.rank == slow and c.ranks == (slow,) and c.what == COMPUTE, c.text
    assert c.steps_on_path == 3 and c.ratio == pytest.approx(2.0, rel=0.05)
    assert c.peers == "pipeline-parallel" and "PP peers'" in c.text
    assert (c.predicted_gain_ms or 0) > 0.1 * c.step_ms
    for p in crit.paths:  # the path crosses the stages through their send/recv pairs, back to back
        segs = p.segments
        assert all(a.end_ns == b.start_ns for a, b in zip(segs, segs[1:], strict=False))
        assert {s.rank for s in segs if s.kind == OWN} >= {0, slow}
        assert any(s.kind == COMM and s.group.startswith("send/recv") for s in segs)
    assert [g.kind for g in crit.comm] and all(g.kind == "pipeline" for g in crit.comm)


@pytest.mark.parametrize("slow", [0, 2])
def test_rendezvous_sends_a_stage_waits_in_name_the_stage_it_waits_for(slow: int):
    """NCCL-like send/recv: a send ends with its recv, so a stage sending to a slow stage waits in its send; the walk
    goes through the send to the receiver that arrived last."""
    rng = np.random.default_rng(30 + slow)
    rn = gpipe(4, 4, 3, lambda r, s, k, ph: int(1_000 * US * (1 + ph) * (2.0 if r == slow else 1.0)
                                                * _jit(rng, 0.99, 1.01)), eager=None)
    ln = links(rn.ranks, cross_rank(rn.ranks), None)
    assert not any(bool(s.any()) for s in ln.solo)
    graphs = build(rn.ranks, cross_rank(rn.ranks), None, None, ln)
    assert all(np.array_equal(replay(g), g.stop) for g in graphs)
    c = _crit(rn).cause
    assert c.rank == slow and c.what == COMPUTE, c.text
    jit = gpipe(4, 4, 5, lambda r, s, k, ph: int(1_000 * US * (1 + ph) * _jit(rng, 0.9, 1.1)), eager=None)
    assert _crit(jit).cause.rank is None


def test_the_peer_of_a_two_rank_job_comes_from_the_group():
    rng = np.random.default_rng(11)
    rn = gpipe(2, 4, 3, lambda r, s, k, ph: int(1_000 * US * (1 + ph) * (2.0 if r == 1 else 1.0)
                                                * _jit(rng, 0.99, 1.01)), peer=False)
    assert _crit(rn).cause.rank == 1


def test_stages_on_clocks_seconds_apart_are_aligned_by_their_sends():
    """No collective aligns the stages' clocks (each 1.7 s ahead of the previous): the send/recv pairs do (a recv
    cannot end before its send; the least latency each way made equal), and the slow stage is still named."""
    rng = np.random.default_rng(12)
    shift = 1_700_000_000
    rn = gpipe(4, 4, 3, lambda r, s, k, ph: int(1_000 * US * (1 + ph) * (2.0 if r == 2 else 1.0)
                                                * _jit(rng, 0.99, 1.01)), shift_ns=shift)
    cross = cross_rank(rn.ranks)
    ln = links(rn.ranks, cross, None)
    for r in range(4):  # within the transfer time (50 us) of the true offset
        assert abs(ln.offsets_ns[r] + r * shift) < 50 * US
    c = _crit(rn).cause
    assert c.rank == 2 and c.what == COMPUTE, c.text
    jit = gpipe(4, 4, 5, lambda r, s, k, ph: int(1_000 * US * (1 + ph) * _jit(rng, 0.9, 1.1)), shift_ns=shift)
    assert _crit(jit).cause.rank is None


@pytest.mark.parametrize("stages,seed", [(2, 1), (4, 2), (4, 3)])
def test_pure_jitter_names_no_stage(stages: int, seed: int):
    rng = np.random.default_rng(seed)
    rn = gpipe(stages, 4, 5, lambda r, s, k, ph: int(1_000 * US * (1 + ph) * _jit(rng, 0.9, 1.1)))
    c = _crit(rn).cause
    assert c.rank is None and c.ranks == (), c.text
    assert c.text.startswith("No single rank holds the job back")


def test_a_stage_idle_before_its_work_is_named_as_idle():
    rng = np.random.default_rng(13)
    rn = gpipe(4, 4, 3, lambda r, s, k, ph: int(1_000 * US * (1 + ph) * _jit(rng, 0.99, 1.01)),
               sleep=lambda r: 1_500 * US if r == 1 else 0)
    c = _crit(rn).cause
    assert c.rank == 1 and c.what == IDLE, c.text


def test_the_report_leads_with_the_slow_stage():
    rng = np.random.default_rng(14)
    rn = gpipe(2, 4, 3, lambda r, s, k, ph: int(1_000 * US * (1 + ph) * (3.0 if r == 0 else 1.0)
                                                * _jit(rng, 0.99, 1.01)))
    rep = analyze(rn)
    assert rep.findings[0].text.startswith("Rank 0 may hold the job back"), rep.findings[0].text  # 2 stages, 3 steps


def test_sends_without_a_peer_are_said_not_guessed():
    """Four stages in one group and no recorded peer: no pair is made up; the report says the path cannot cross
    them."""
    rng = np.random.default_rng(15)
    rn = gpipe(4, 4, 3, lambda r, s, k, ph: int(1_000 * US * (1 + ph) * _jit(rng, 0.99, 1.01)), peer=False)
    ln = links(rn.ranks, cross_rank(rn.ranks), None)
    assert ln.groups == () and ln.unpaired == sum(len(rt.collectives) for rt in rn.ranks)
    rep = analyze(rn)
    assert rep.critical is None
    assert any(f.text.startswith(f"{ln.unpaired} send/recv calls of the analyzed steps could not be paired")
               for f in rep.findings), [f.text for f in rep.findings]


def test_a_peer_is_a_rank_of_its_group_turned_global():
    from commprof.analysis.crossrank.p2p import peer_of

    send = collective(0, 1, op="send", group="pp", group_size=4, peer=2)
    assert peer_of(send, 8, {"pp": (0, 8, 16, 24)}, 32) == 16  # group rank 2 of (0, 8, 16, 24)
    assert peer_of(send, 8, {}, 32) is None  # a subgroup without its members: not guessed
    assert peer_of(send, 1, {}, 4) == 2  # the world group: its ranks are global
    two = collective(0, 1, op="recv", group="x", group_size=2)
    assert peer_of(two, 5, {"x": (5, 9)}, 16) == 9  # no peer recorded: the other member of a 2-rank group


@pytest.mark.parametrize("eager", [None, 5 * US])
def test_a_send_recv_pair_s_transfer_and_waits_are_told_apart(eager: int | None):
    """Stage 1 computes 3x stage 0's (rendezvous or eager sends): each pair moves its 1 MiB in the builder's 50 µs
    whatever the waits around it (the audit's gloo pipeline read 0.00 GB/s: each call's own duration, waits
    included); stage 0 waits in its sends and recvs for stage 1, and its exposed communication says so (it was
    "!!" with no wait counted)."""
    from commprof.analysis.crossrank.p2p import transfer_ns

    rng = np.random.default_rng(21)
    rn = gpipe(2, 4, 3, lambda r, s, k, ph: int(1_000 * US * (1 + ph) * (3.0 if r == 1 else 1.0)
                                                * _jit(rng, 0.99, 1.01)), eager=eager)
    ln = links(rn.ranks, cross_rank(rn.ranks), None)
    assert ln.groups and all(np.array_equal(transfer_ns(g), np.full(len(g.steps), 50 * US)) for g in ln.groups)
    rep = analyze(rn)
    fits = [f for f in rep.bandwidth.fits if f.op == "send"]
    assert len(fits) == 2 and all(f.busbw_gbps == pytest.approx((1 << 20) / 50e-6 / 1e9, rel=1e-3) for f in fits)
    o0 = next(o for o in rep.overlaps if o.rank == 0).representative
    assert o0 is not None
    idle_in_comm = (o0.exposed_ns - 8 * 50 * US) / 1e6  # its exposed communication less its 8 transfers a step
    assert rep.cross.wait_ms_per_step[0] == pytest.approx(idle_in_comm, rel=0.1)
    exposed = next(f for f in rep.findings if f.text.startswith("Exposed communication"))
    assert exposed.severity == "info" and "waits for ranks that arrive later" in exposed.text, exposed.text
