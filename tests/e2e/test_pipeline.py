"""Model / pipeline parallelism and the partition advisor (real 2-process GPipe over gloo)."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np
import pytest

from commprof.analysis.pipeline.stages import Layer, best_split, simulate_gpipe, slowest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))


def test_best_split_balances_equal_layers():
    comp = np.ones(8)
    xfer = np.zeros(8)
    assert best_split(comp, xfer, 2) == ((4, 4), 4.0)
    assert best_split(comp, xfer, 3)[1] == 3.0
    # an expensive boundary moves the cut
    xfer2 = np.zeros(8)
    xfer2[3] = 10.0
    split, cost = best_split(comp, xfer2, 2)
    assert split != (4, 4) and cost == pytest.approx(slowest(comp, xfer2, split))


def test_best_split_with_uneven_layers():
    comp = np.array([5.0, 1, 1, 1, 1, 1])
    assert best_split(comp, np.zeros(6), 2) == ((1, 5), 5.0)


def test_gpipe_simulation():
    layers = [Layer(f"l{i}", 0, 1.0, 2.0, 0) for i in range(8)]
    # 2 balanced stages, 4 micro-batches: forward (4 + 1) x 4 ms, backward (4 + 1) x 8 ms
    assert simulate_gpipe(layers, [4, 4], 4, None) == pytest.approx(5 * 4 + 5 * 8)
    assert simulate_gpipe(layers, [7, 1], 4, None) > simulate_gpipe(layers, [4, 4], 4, None)


@pytest.mark.slow
def test_partition_advice_is_right_and_its_prediction_holds():
    import bench_partition
    from proofs import DISTURBED_PCT, check_bands, drift, withheld_honestly

    def disturbance(res) -> str | None:
        nz = res["report"].noise
        if nz.disturbed:
            return f"the traced run was disturbed ({nz.describe()})"
        adv = res["advice"]
        moved = drift([SimpleNamespace(setting="traced split", predicted_ms=adv.baseline_step_ms,
                                       measured_ms=res["measured_base"])]) if adv is not None else None
        if moved is not None:
            return moved
        loud = [f"{k}: steps vary by {res[k]:.1f}%" for k in ("spread_base", "spread_new")
                if (res.get(k) or 0.0) > DISTURBED_PCT]
        return "the measurement was disturbed: " + "; ".join(loud) if loud else None

    reps = 3
    res = bench_partition.proof([7, 1], reps=reps)
    why = disturbance(res)
    if why is not None:  # one more attempt, on a disturbance named; every assertion applies to the one kept
        print(f"\n{why}: traced and measured once more")
        res = bench_partition.proof([7, 1], reps=reps)
    adv = res["advice"]
    if adv is None:
        assert withheld_honestly(res), f"no partition advice from a traced run called quiet: {res['report'].noise}"
        return
    assert adv.knob == "partition"
    assert abs(adv.value[0] - adv.value[1]) <= 2  # a balanced split of 8 equal layers
    table = bench_partition.table(res)
    print("\n" + table)
    assert adv.predicted_range_ms[1] < adv.baseline_step_ms  # advised only when the whole band is below the step
    assert res["measured_new"] < res["measured_base"], table
    rows = [SimpleNamespace(setting="traced split", band_ms=res["baseline_range_ms"], measured_ms=res["measured_base"],
                            predicted_ms=adv.baseline_step_ms, spread_pct=res.get("spread_base")),
            SimpleNamespace(setting="advised split", band_ms=adv.predicted_range_ms, measured_ms=res["measured_new"],
                            predicted_ms=adv.predicted_step_ms, spread_pct=res.get("spread_new"))]
    check_bands(rows, reps)
    pipe = res["report"].pipeline
    assert [s.layers for s in pipe.stages] == [7, 1]
    from commprof.workloads.pipedemo import DEFAULTS
    mb_bytes = DEFAULTS["batch"] // DEFAULTS["microbatches"] * DEFAULTS["width"] * 4
    assert all(s.microbatches == 4 and s.sent_bytes == mb_bytes for s in pipe.stages)
    assert pipe.stages[1].bubble_ms > pipe.stages[0].bubble_ms  # the light stage waits
