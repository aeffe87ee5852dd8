"""Data-parallel communication on the critical path names the remedy of the wrapper the run uses: a user's FSDP2
run over gloo was told to overlap it with "DDP bucket size, FSDP prefetch" beside the FSDP replay's "no FSDP
setting is predicted to gain more than 5%" (its collectives block the training thread there)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from commprof.analysis.crossrank.critfindings import _HOW, _remedy, data_how
from commprof.analysis.crossrank.pgkind import DATA


def test_the_remedy_follows_the_wrapper_and_the_backend():
    assert "DDP's bucket size" in data_how(fsdp=False, ddp=True, gloo=True)
    assert "set_modules_to_forward_prefetch" in data_how(fsdp=True, ddp=False, gloo=False)
    assert data_how(fsdp=False, ddp=False, gloo=False) == _HOW[DATA]  # neither seen: the generic remedy
    fsdp_gloo = _remedy(data_how(fsdp=True, ddp=False, gloo=True), 49.17)
    assert fsdp_gloo.startswith("On gloo FSDP2's collectives run on the training thread, so no FSDP setting hides")
    assert "up to 49.17 ms per step" in fsdp_gloo and "could save" not in fsdp_gloo
    ddp = _remedy(data_how(fsdp=False, ddp=True, gloo=True), 7.69)
    assert ddp.startswith("Overlapping it with compute (overlapping the gradient all-reduces") and "7.69 ms" in ddp


def test_what_overlap_can_save_is_bounded_by_the_transfers_and_the_compute():
    """Hidden behind compute, the transfers still take their time: the 500 Mbit/s DDP trace's 563.70 ms of transfers
    on the path of a 748 ms step with 184 ms of compute read "could save at most 563.70 ms"."""
    from dataclasses import replace

    from commprof.analysis.crossrank.rootcause import Critical

    crit = Critical(paths=(), cause=SimpleNamespace(step_ms=748.41), comm=(), kinds={},  # type: ignore[arg-type]
                    compute_floor_ms=184.0)
    assert crit.saves_at_most_ms(563.70) == pytest.approx(748.41 - 563.70)  # the transfers bound the step
    assert crit.saves_at_most_ms(50.0) == 50.0  # few transfers, much compute: all of them
    assert replace(crit, compute_floor_ms=720.0).saves_at_most_ms(50.0) == pytest.approx(28.41)  # compute bounds
    text = _remedy(_HOW[DATA], 563.70, crit.saves_at_most_ms(563.70))
    assert "could save at most 184.71 ms per step (hidden, the 563.70 ms of transfers still take their time" in text
    assert "run through other work" in _remedy(_HOW[DATA], 50.0, 50.0)


def test_a_plain_ddp_trace_s_world_group_is_data_parallel():
    """A plain torch.profiler DDP job (no sidecar): its one world group carries equal-sized buckets (9 a step), once
    read as one message size repeated, tensor-parallel (with the tensor-parallel remedy); DDP's operators say data."""
    import numpy as np
    from builders import collective, rank_trace

    from commprof.analysis.crossrank.matching import cross_rank
    from commprof.analysis.crossrank.pgkind import TENSOR, group_kinds
    from commprof.model.alloc import DDP_REDUCER, Mark

    def ranks(marks: tuple) -> list:
        return [rank_trace(r, steps=[(s, s * 10**7, (s + 1) * 10**7) for s in range(3)], marks=marks,
                           collectives=[collective(s * 10**7 + k * 10**6, s * 10**7 + k * 10**6 + 5 * 10**5, step=s,
                                                   nbytes=1 << 20) for s in range(3) for k in range(9)])
                for r in (0, 1)]

    reducer = (Mark(kind=DDP_REDUCER, detail="copy_bucket_to_grad", start_ns=1, end_ns=2),)
    for marks, kind in (((), TENSOR), (reducer, DATA)):
        rs = ranks(marks)
        (g,) = group_kinds(rs, cross_rank(rs).groups).values()
        assert g.kind == kind and g.source == "membership" and np.array_equal(g.ranks, (0, 1))
