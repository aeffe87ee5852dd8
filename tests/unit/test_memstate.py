"""The memory arithmetic of the DDP -> FSDP2 what-if, on hand-built parameters and phases."""

from __future__ import annotations

import pytest
from builders import rank_trace

from commprof.analysis.memory.ddp2fsdp import _fsdp_peak, _Phases, band
from commprof.analysis.memory.memstate import ddp_state, fsdp_state, optimizer, shard_bytes, units_of
from commprof.model import Mark, ParamInfo

MiB = 2**20


def _p(name: str, shape: tuple[int, ...], dtype: str = "float32") -> ParamInfo:
    n = 1
    for d in shape:
        n *= d
    return ParamInfo(name=name, numel=n, dtype=dtype, shape=shape)


PARAMS = [_p("module.0.0.weight", (1024, 1024)), _p("module.0.0.bias", (1024,)), _p("module.1.weight", (10, 1024)),
          _p("module.1.bias", (10,)), _p("module.scale", (3,))]


def test_shards_are_padded_rows_and_units_are_top_level_children():
    assert shard_bytes(_p("w", (10, 1024)), 4) == 3 * 1024 * 4  # ceil(10 / 4) rows
    assert shard_bytes(_p("b", (10,), "bfloat16"), 4) == 3 * 2
    units = units_of(PARAMS, 4)
    assert [u.name for u in units] == ["", "0", "1"]
    root, u0, u1 = units
    assert [p.name for p in root.params] == ["module.scale"]
    assert u0.shard_bytes == (256 * 1024 + 256) * 4 and u0.unsharded_bytes == 4 * u0.shard_bytes
    assert u1.unsharded_bytes == 4 * (3 * 1024 + 3) * 4


def test_state_under_ddp_and_fsdp2_with_adam():
    units = units_of(PARAMS, 2)
    total = sum(p.bytes for p in PARAMS)
    d = ddp_state(PARAMS, 2, bucket_copy=True)
    assert (d.params_bytes, d.grads_bytes, d.optimizer_bytes, d.buckets_bytes) == (total, total, 2 * total, total)
    f = fsdp_state(units, 2)
    shard = sum(u.shard_bytes for u in units)
    assert (f.params_bytes, f.grads_bytes, f.optimizer_bytes, f.buckets_bytes) == (shard, shard, 2 * shard, 0)
    assert shard >= total / 2 and f.total < d.total / 2


def test_optimizer_from_the_trace_else_assumed():
    def rt(*names):
        return rank_trace(marks=tuple(Mark(kind="optimizer_step", detail=n, start_ns=0, end_ns=1) for n in names))

    assert optimizer(rt("AdamW", "AdamW")) == ("AdamW", 2, False)
    assert optimizer(rt("SGD")) == ("SGD", 0, True)  # momentum is not visible: assumed none
    assert optimizer(rt()) == ("Adam", 2, True)
    assert optimizer(rt("Shampoo")) == ("Shampoo", 2, True)


def test_transient_peak_per_phase():
    units = units_of([_p("module.0.weight", (512, 512)), _p("module.1.weight", (512, 512))], 2)[1:]
    u = units[0].unsharded_bytes  # 1 MiB each, 0.5 MiB shards
    ph = _Phases(fwd=10 * MiB, bwd={"1": 11 * MiB, "0": 6 * MiB}, tail=1 * MiB, grads_in_step=True, peak=14 * MiB)
    held = {"fwd:0": u, "fwd:1": u, "fwd_tail": 0, "bwd:1": 2 * u, "bwd:0": u, "bwd_tail": 0}
    # forward: 10 MiB + one unit held + one all-gather buffer; backward of unit 1 (first): 11 MiB + its parameters and
    # the prefetched unit's (2u) + its unsharded gradients (u), which later sit beside the reduce-scatter's input
    # (u) once its parameters are resharded: never 2u on top of the parameters
    assert _fsdp_peak(ph, units, held, 0) == max(10 * MiB + 2 * u, 11 * MiB + 3 * u, 6 * MiB + u // 2 + 2 * u)
    assert _fsdp_peak(ph, units, held, 0) == 14 * MiB
    # a CUDA timeline counts the DDP state: base is taken off every phase
    assert _fsdp_peak(ph, units, held, 1 * MiB) == _fsdp_peak(ph, units, held, 0) - MiB


def test_band_widens_with_the_model_error_and_the_noise():
    from commprof.analysis.uncertainty.maths import Noise

    lo, hi = band(100.0, Noise(), 5.0)
    h = (8.0**2 + 5.0**2 + 10.0**2) ** 0.5  # the replays' floor, the model's error, the structure (quiet run)
    assert (lo, hi) == pytest.approx((100 - h, 100 + h))
    lo2, hi2 = band(100.0, Noise(unprofiled_pct=6.0, steps_unprofiled=10), 5.0)
    assert lo2 < lo and hi2 > hi and hi2 - 100 == pytest.approx((8.0**2 + 5.0**2 + 12.0**2 + 10.0**2) ** 0.5)


def test_collectives_as_the_backend_runs_them():
    from commprof.analysis.memory.ddp2fsdp import collective_ns

    nbytes, alpha_s, beta_bps, pass_bps, fresh_bps = 4_000_000, 1e-4, 5e8, 1e10, 2e9
    half = 1e5 + nbytes / (2 * beta_bps) * 1e9  # a ring all-gather / reduce-scatter: half an all-reduce's bytes
    ag, rs = collective_ns(nbytes, alpha_s, beta_bps, pass_bps, fresh_bps, gloo=False)
    assert ag == rs == pytest.approx(half + nbytes / pass_bps * 1e9)  # NCCL: one copy pass each
    ag, rs = collective_ns(nbytes, alpha_s, beta_bps, pass_bps, fresh_bps, gloo=True)
    # gloo: the all-gather writes a fresh output then FSDP2 copies out; the reduce-scatter is a whole all-reduce
    # after chunk_cat into a fresh input, and a clone
    assert ag == pytest.approx(half + nbytes / fresh_bps * 1e9 + nbytes / pass_bps * 1e9)
    assert rs == pytest.approx(1e5 + nbytes / beta_bps * 1e9 + 2 * nbytes / fresh_bps * 1e9)
    assert rs > 1.8 * (half - 1e5)  # about twice the ring's wire time: what the 2 Gbit/s proof measured
