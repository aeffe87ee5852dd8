"""Who holds a pipeline back, on the real 2-stage GPipe workload over gloo (commprof.workloads.pipedemo: activations
and gradients exchanged with send/recv, traced with commprof.trace()).  A stage holding 3x the other's layers is
the root cause, found through the send/recv pairs; a balanced split names at most the stage that measured more
compute."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import commprof
from commprof.analysis.crossrank.chance import weak
from commprof.analysis.perrank import compute_busy

pytestmark = pytest.mark.slow


def _traced(out: Path, split: list[int]) -> commprof.Report:
    from commprof.workloads.pipedemo import launch

    launch(str(out), split=split, steps=8, trace=True, wait=1, warmup=1, active=5, width=1024, batch=128)
    return commprof.analyze(commprof.load(out))


def _compute_ms(rep: commprof.Report) -> dict[int, float]:
    """Each stage's measured compute per analyzed step (median)."""
    return {rt.rank: float(np.median([compute_busy(rt, s.number) for s in rt.steps])) / 1e6 for rt in rep.run.ranks}


def test_the_stage_with_three_times_the_work_is_the_root_cause(tmp_path: Path):
    rep = _traced(tmp_path, [2, 6])
    assert rep.critical is not None
    c = rep.critical.cause
    assert c.rank == 1 and c.ranks == (1,), c.text
    assert c.what == "compute" and c.peers == "pipeline-parallel"
    assert c.steps_on_path >= 3 and c.steps >= 4
    assert c.ratio is not None and 1.8 < c.ratio < 4.5  # 3x the layers: about 3x the compute (a shared CPU)
    assert (c.predicted_gain_ms or 0) > 0.2 * c.step_ms
    assert rep.findings[0].text.startswith(f"Rank 1 {'may hold' if weak(c) else 'holds'} the job back")
    # what it ran: the linear layers' matrix products lead its compute on the path
    assert c.top_ops and c.top_ops[0].name in ("aten::mm", "aten::addmm"), c.top_ops
    assert sum(t.share_pct for t in c.top_ops if t.name in ("aten::mm", "aten::addmm")) > 50
    kinds = {g.kind for g in rep.critical.comm}
    assert kinds <= {"pipeline"} and all(s.rank in (0, 1) for p in rep.critical.paths for s in p.segments)
    assert any(s.group.startswith("send/recv") for p in rep.critical.paths for s in p.segments)


def test_a_balanced_split_names_at_most_the_stage_that_computed_more(tmp_path: Path):
    rep = _traced(tmp_path, [4, 4])
    assert rep.critical is not None
    c = rep.critical.cause
    comp = _compute_ms(rep)
    if c.rank is None:
        assert c.text.startswith("No single rank holds the job back") and len(c.spread) == 2
    else:  # one stage can legitimately be slower on a shared CPU: then it measured more compute
        assert c.rank == max(comp, key=lambda r: comp[r]), (c.text, comp)
        assert c.ratio is not None and c.ratio > 1.0
