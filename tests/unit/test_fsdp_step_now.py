"""The FSDP advisor on the repository's real FSDP2 gloo trace, against a step outside the profiler it cannot reach:
one current step (the measured one, not the replay's), and the replay's miss said (a user's run showed the what-ifs
"26% slower than today" and advice withheld against the replay's 166.2 ms beside a measured 131.6 ms)."""

from __future__ import annotations

import commprof
from commprof.analysis.bandwidth import bandwidth
from commprof.analysis.crossrank.matching import cross_rank
from commprof.analysis.fsdp.advice import fsdp_advisor
from commprof.analysis.steptimes import unprofiled_step_ms
from conftest import real


def test_a_step_the_replay_cannot_reach_is_said_and_is_the_current_step():
    run = commprof.load(real("fsdp2_gloo_cpu"))
    bw = bandwidth(run.ranks, cross_rank(run.ranks))
    as_is = fsdp_advisor(run, bw, unprofiled_step_ms(run))
    assert as_is is not None and as_is.baseline_step_ms is not None
    assert not any(f.text.startswith("The replay of the traced settings gives") for f in as_is.findings)
    low = {r.rank: as_is.baseline_step_ms / (3 + r.rank) for r in run.ranks}  # each rank its own step
    a = fsdp_advisor(run, bw, low)
    assert a is not None and a.step_now_ms == low[a.report.rank]  # the modeled rank's, not another's
    said = [f.text for f in a.findings if f.text.startswith("The replay of the traced settings gives")]
    assert len(said) == 1 and f"above the step as it is now ({a.step_now_ms:.1f} ms, the one every" in said[0]
    assert a.advice == ()  # nothing beats a step a third of the replay's
