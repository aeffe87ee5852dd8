"""The DDP -> FSDP2 what-if proven on an emulated 2 Gbit/s link (benchmarks/bench_ddp2fsdp_netns.py): the MLP traced
under DDP, then trained with fully_shard for real.  Bands that hold on a busy 2-core host: the measured step inside
the prediction's band, the predicted peak memory within 20% of the measured one.  Skips where ip netns fails."""

from __future__ import annotations

import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import bench_ddp2fsdp_netns as bench

pytestmark = pytest.mark.slow


def test_ddp_to_fsdp2_whatif_on_2gbit_mlp(net):
    rows, rep = bench.proof(net, "mlp", reps=1)
    print("\n" + bench.table(rows))
    a = rep.parallel
    assert a is not None and a.today.total > a.whatifs[0].state.total  # sharding holds less state
    assert any(i["knob"] == "parallelism" for i in __import__("commprof.render.summary", fromlist=["summary"])
               .summary(rep)["whatifs"])
    for r in rows:
        assert r.in_band, r
        assert r.predicted_peak and r.measured_peak and abs(r.peak_error_pct or 0) <= 20.0, r
