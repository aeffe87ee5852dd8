"""Steps whose inputs differ in size (``uncertainty.inputwork``) and the capture's input count (``capture.inputs``)."""

from __future__ import annotations

import numpy as np
import torch

from commprof.analysis.uncertainty.inputwork import MIN_EXPLAINED, adjust, describe, slope
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
    (moved,), fit = adjust([steps], sizes)
    assert fit is not None and fit.ranks == 2
    assert fit.explained > 0.85 and 20 < fit.inputs_pct < 35
    assert abs(fit.ms_per_melem - 1000) < 150  # 1 ms per 1,000 elements
    for r in (0, 1):
        assert _pct(steps[r]) > 15 and _pct(moved[r]) < 5, (_pct(steps[r]), _pct(moved[r]))
        assert [n for n, _ in moved[r]] == [n for n, _ in steps[r]]
    assert "vary in size by" in describe(fit, 21.0) and "(21.0% as they came)" in describe(fit, 21.0)


def test_a_stall_stays_a_stall_at_one_input_size():
    """The median of pairwise slopes is not bent by one step 5x slow: the stall keeps its excess."""
    sizes, steps = _job(seed=1)
    stalled = {r: [(n, ms * 5 if n == 7 else ms) for n, ms in v] for r, v in steps.items()}
    (moved,), fit = adjust([stalled], sizes)
    assert fit is not None
    for r in (0, 1):
        others = [ms for n, ms in moved[r] if n != 7]
        at7 = dict(moved[r])[7]
        assert at7 > 3 * float(np.median(others)), (at7, others)


def test_steps_stay_as_they_came_where_the_size_is_one_or_explains_too_little():
    sizes, steps = _job(seed=2)
    one = dict.fromkeys(sizes, 64_000)
    (moved,), fit = adjust([steps], one)
    assert fit is None and moved == {r: list(v) for r, v in steps.items()}
    # sizes that vary while the times follow something else: noise 30%, no size in it
    rng = np.random.default_rng(3)
    unrelated = {r: [(n, 50 * (1 + rng.normal(0, 0.3))) for n, _ in v] for r, v in steps.items()}
    (moved,), fit = adjust([unrelated], sizes)
    assert fit is None or fit.explained >= MIN_EXPLAINED
    # larger inputs faster: no line of work
    inverted = {r: [(n, 200 - sizes[n] / 1000) for n, _ in v] for r, v in steps.items()}
    assert adjust([inverted], sizes)[1] is None
    # one size but for two steps (a last short batch, an evaluation pass): two points draw no line
    few = {n: (16_000 if n in (3, 9) else 64_000) for n in sizes}
    lopsided = {r: [(n, 20 + few[n] / 1000) for n, _ in v] for r, v in steps.items()}
    assert adjust([lopsided], few)[1] is None
    # no sizes recorded (a sidecar without them, a trace made without commprof)
    assert adjust([steps], {})[1] is None


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
