"""commprof's overlap % against HTA's get_comm_comp_overlap on every NCCL trace set in tests/data/real.

commprof reports the whole window by default; restricted to HTA's window (GPU work launched before the
last ProfilerStep began, starts rounded up and ends down to whole microseconds, as HTA does) it must agree
within 0.5 percentage points.
"""

from __future__ import annotations

import logging

import pytest

import commprof
from conftest import real

hta = pytest.importorskip("hta.trace_analysis", reason="HolisticTraceAnalysis is not installed")

SETS = [
    "megatron_tp8_a100",
    "dlrm_8gpu_v100",
    "hta/tests/data/nccl_parser_config",
    "hta/tests/data/trace_filter",
    "hta/tests/data/negative_queue_length_values_check",
    "hta/tests/data/df_index_resolver",
    "hta/tests/data/trace_diff/control",
    "hta/tests/data/trace_diff/test",
]


@pytest.mark.parametrize("rel", SETS)
def test_overlap_matches_hta_within_half_a_point(rel):
    path = real(rel)
    logging.disable(logging.WARNING)
    try:
        df = hta.TraceAnalysis(trace_dir=str(path)).get_comm_comp_overlap(visualize=False)
    finally:
        logging.disable(logging.NOTSET)
    theirs = dict(zip(df["rank"].tolist(), df["comp_comm_overlap_pctg"].tolist(), strict=True))
    rep = commprof.analyze(commprof.load(path))
    ours = {o.rank: o.hta_window.overlap_pct for o in rep.overlaps}
    assert ours.keys() == theirs.keys()
    for r in ours:
        assert ours[r] == pytest.approx(theirs[r], abs=0.5), (r, ours[r], theirs[r])


def test_the_bridge_gives_hta_only_the_traces_and_commprofs_overlap_in_its_columns(tmp_path):
    """A commprof folder holds sidecars and a report beside the traces: the bridge's folder links the traces
    only; ``overlap_frame`` carries HTA's column names and, on DLRM, HTA's own numbers."""
    from commprof.render.hta import analysis, overlap_frame, trace_folder
    from conftest import EXAMPLE

    run = commprof.load(EXAMPLE)
    folder = trace_folder(run, tmp_path / "hta")
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in EXAMPLE.glob("rank*.pt.trace.json*"))
    assert all(p.is_symlink() for p in folder.iterdir())
    dlrm = commprof.load(real("dlrm_8gpu_v100"))
    logging.disable(logging.WARNING)
    try:
        theirs = analysis(dlrm, tmp_path / "dlrm").get_comm_comp_overlap(visualize=False)
    finally:
        logging.disable(logging.NOTSET)
    ours = overlap_frame(commprof.analyze(dlrm))
    assert list(ours.columns[:2]) == list(theirs.columns)
    merged = theirs.merge(ours, on="rank", suffixes=("_hta", "_ours"))
    diff = (merged["comp_comm_overlap_pctg_hta"] - merged["comp_comm_overlap_pctg_ours"]).abs()
    assert len(merged) == 8 and diff.max() <= 0.5
