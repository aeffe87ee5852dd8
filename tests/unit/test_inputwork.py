"""Steps whose inputs differ in size (``uncertainty.inputwork``) and the capture's input count (``capture.inputs``)."""

from __future__ import annotations

import numpy as np
import torch

from commprof.analysis.uncertainty.inputwork import MIN_EXPLAINED, adjust, describe, rank_z, slope
from commprof.capture.inputs import InputCounter


def _job(seed: int = 0, n: int = 16, noise_pct: float = 3.0
         ) -> tuple[dict[int, int], dict[int, list[tuple[int, float]]]]:
    """Two ranks whose steps take 20 ms + 1 ms per 1,000 input elements, with ``noise_pct`` of noise."""
    rng = np.random.default_rng(seed)
    sizes = {s: int(rng.choice([48_000, 64_000, 80_000, 96_000])) for s in range(n)}
    steps = {r: [(s, (20 + sizes[s] / 1000) * (1 + rng.normal(0, noise_pct / 100))) for s in range(n)]
             for r in (0, 1)}
    return sizes, steps


def _pct(v: list[tuple[int, float]]) -> float:
    x = np.array([ms for _n, ms in v])
    return float(x.std(ddof=1) / x.mean() * 100)


def test_steps_move_to_one_input_size_and_what_remains_is_the_noise():
    sizes, steps = _job()
    (moved,), kinds, fit = adjust([steps], sizes)
    assert fit is not None and fit.ranks == 2 and kinds == [True] and fit.profiled and not fit.outside
    assert fit.explained > 0.85 and 20 < fit.inputs_pct < 35
    assert abs(fit.ms_per_melem - 1000) < 150  # 1 ms per 1,000 elements
    for r in (0, 1):
        assert _pct(steps[r]) > 15 and _pct(moved[r]) < 5, (_pct(steps[r]), _pct(moved[r]))
        assert [n for n, _ in moved[r]] == [n for n, _ in steps[r]]
    text = describe(fit, False)
    assert text.endswith("the job's data, not a disturbance") and "vary in size by" in text, text
    assert describe(fit, True).endswith("the job's data")  # a disturbed run: its data is not all of it


def test_a_stall_stays_a_stall_at_one_input_size():
    """The median of pairwise slopes is not bent by one step 5x slow: the stall keeps its excess."""
    sizes, steps = _job(seed=1)
    stalled = {r: [(n, ms * 5 if n == 7 else ms) for n, ms in v] for r, v in steps.items()}
    (moved,), _kinds, fit = adjust([stalled], sizes)
    assert fit is not None
    for r in (0, 1):
        others = [ms for n, ms in moved[r] if n != 7]
        at7 = dict(moved[r])[7]
        assert at7 > 3 * float(np.median(others)), (at7, others)


def test_steps_stay_as_they_came_where_the_size_is_one_or_explains_too_little():
    sizes, steps = _job(seed=2)
    one = dict.fromkeys(sizes, 64_000)
    (moved,), _kinds, fit = adjust([steps], one)
    assert fit is None and moved == {r: list(v) for r, v in steps.items()}
    # sizes that vary while the times follow something else: noise 30%, no size in it
    rng = np.random.default_rng(3)
    unrelated = {r: [(n, 50 * (1 + rng.normal(0, 0.3))) for n, _ in v] for r, v in steps.items()}
    (moved,), _kinds, fit = adjust([unrelated], sizes)
    assert fit is None or fit.explained >= MIN_EXPLAINED
    # larger inputs faster: no line of work
    inverted = {r: [(n, 200 - sizes[n] / 1000) for n, _ in v] for r, v in steps.items()}
    assert adjust([inverted], sizes)[2] is None
    # one size but for two steps (a last short batch, an evaluation pass): two points draw no line
    few = {n: (16_000 if n in (3, 9) else 64_000) for n in sizes}
    lopsided = {r: [(n, 20 + few[n] / 1000) for n, _ in v] for r, v in steps.items()}
    assert adjust([lopsided], few)[2] is None
    # no sizes recorded (a sidecar without them, a trace made without commprof)
    assert adjust([steps], {})[2] is None


def test_the_slope_samples_pairs_beyond_its_limit_and_stays_right():
    x = np.arange(1000, dtype=float)
    y = 3.0 * x + 7
    assert abs(slope(x, y) - 3.0) < 1e-9
    assert slope(np.ones(5), np.arange(5.0)) == 0.0  # no two sizes differ


def test_the_input_counter_counts_each_steps_tensors_and_leaves_the_model_as_it_was():
    class Net(torch.nn.Module):
        def forward(self, x, extra=None, pair=(), table=None):
            return x.sum()

    net = Net()
    counter = InputCounter(net)
    assert counter.take() is None  # no call yet
    out = net(torch.ones(2, 3), extra=torch.ones(4), pair=(torch.ones(5), 1), table={"a": torch.ones(6), "b": 2})
    assert out.item() == 6.0  # what the model computes is untouched
    net(torch.ones(1))
    assert counter.take() == 6 + 4 + 5 + 6 + 1
    assert counter.take() is None  # a fresh count for the next step
    counter.remove()
    net(torch.ones(3))
    assert counter.take() is None and not net._forward_pre_hooks
    assert InputCounter(object()).take() is None  # not a module: inert


def test_sizes_that_follow_the_steps_order_cannot_tell_work_from_a_drift():
    """A warm-up of sequence lengths (sizes growing step after step) beside a slowdown over the same steps, the times
    unrelated to the size: the line would take the drift for work (a helper's case: 17.7% read as 9.8%)."""
    sizes = {n: 48_000 + 3_000 * n for n in range(16)}
    steps = {r: [(n, 100.0 * (1.4 if n >= 8 else 1.0) * (1 + 0.01 * ((n * 7) % 5))) for n in range(16)] for r in (0, 1)}
    assert adjust([steps], sizes)[2] is None


def test_one_decision_for_every_rank_of_a_kind():
    """The job's line moves every rank's steps of a kind or none: a rank left as it came beside moved ones read
    "21.6% ... explain 100% of their variation ... not a disturbance" of a figure that was not moved."""
    sizes, steps = _job(seed=4)
    rng = np.random.default_rng(5)
    steps[1] = [(n, ms * (1 + rng.normal(0, 0.2))) for n, ms in steps[1]]  # rank 1 noisy besides
    (moved,), kinds, fit = adjust([steps], sizes)
    assert kinds == [True] and fit is not None and fit.ranks == 2
    mid = float(np.median(list(sizes.values())))
    for r in (0, 1):  # the same line for both
        shift = {n: ms - m for (n, ms), (_n, m) in zip(steps[r], moved[r], strict=True)}
        assert all(abs(shift[n] - fit.ms_per_melem * 1e-6 * (sizes[n] - mid)) < 1e-6 for n in shift)


def test_kendalls_test_holds_its_level_when_pairs_are_sampled():
    """Beyond 20,000 pairs the statistic is estimated from a sample: its variance joins (without it 20,000 steps of
    noise read z > 2.326 one time in ten)."""
    rng = np.random.default_rng(7)
    zs = [rank_z(rng.integers(0, 4, 3000).astype(float), rng.normal(size=3000)) for _ in range(200)]
    assert float(np.mean(np.asarray(zs) > 2.326)) < 0.04 and 0.7 < float(np.std(zs)) < 1.3


def test_the_reader_keeps_a_recorded_size_and_drops_a_bad_one(tmp_path):
    from commprof.reader.sidecar import parse

    doc = {"schema": "commprof.sidecar/1", "run_id": "r", "rank": 0, "world_size": 1, "clock": {},
           "steps": [{"step": 0, "start_unix_ns": 0, "end_unix_ns": 10, "profiled": False, "input_elems": 4096},
                     {"step": 1, "start_unix_ns": 10, "end_unix_ns": 20, "profiled": False, "input_elems": -3},
                     {"step": 2, "start_unix_ns": 20, "end_unix_ns": 30, "profiled": True}]}
    side = parse(tmp_path / "rank0.commprof.json", doc, 0)
    assert [s.input_elems for s in side.step_times] == [4096, None, None]
