"""Steps whose inputs differ in size: the job's data, not noise.  A model fed batches of varying sequence length or
image size runs longer steps for larger inputs; their variation is the job's own and a quieter machine would not
remove it.  The capture records each step's input size (``capture.inputs``: the elements of the tensors the
model's calls received); the job's step waits for its largest rank, so a step's size is the largest over the ranks
that recorded it.

Per rank, where the size varies (by ``MIN_INPUTS_PCT`` or more over its steps, ``MIN_OFF`` steps and a quarter
or more of them not of its most usual size: a last short batch or an evaluation step alone draws no line), a line
through its steps' times against that size (Theil-Sen: the median of the pairwise slopes, which a stall does not
bend) moves each step to the size of the median step (``ms - slope x (size - median size)``); kept where larger
inputs take longer beyond chance (``rank_z``) and the size explains ``MIN_EXPLAINED`` of the variance or more (the
variance of the moved steps against the steps' own, both without the moved series' outliers), else the steps stay
as they are.  The run's noise, its stalls and its slow episodes are then judged on the moved steps (``runnoise``):
a step of longer sequences is no stall, and the variation that remains is what disturbs the run.

Measured (``/tmp``-style new-user loop, 2026-12-08, a 3-layer transformer on 2-rank gloo DDP, each rank drawing a
sequence length of 48-96 at random each step): steps outside the profiler varied by 19%; the largest rank's length
explained 96-98% of their variance on both ranks of three runs, and 2.5-4.4% remained: the run read "disturbed"
(advice withheld, "trace again on a quieter machine"), now it reads quiet with its inputs named."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ...model import Run
from .spread import robust_sd

MIN_INPUTS_PCT = 5.0  # inputs varying less than this (coefficient of variation) are one size
MIN_EXPLAINED = 0.5  # the share of the steps' variance the size must explain for the steps to be moved
MIN_STEPS = 4  # steps with a size a rank needs for a line
MIN_OFF = 3  # ... of which this many (and a quarter) not of the most usual size
MIN_Z = 2.326  # ... and larger inputs taking longer beyond chance (Kendall's test, one-sided 1%: ``rank_z``)
MAX_PAIRS = 20_000  # pairwise slopes sampled (seeded) beyond this many pairs
HAMPEL_SDS = 3.0  # a moved step this many robust deviations from the median is an outlier, kept out of the share

Series = Mapping[int, Sequence[tuple[int, float]]]


@dataclass(frozen=True, slots=True)
class InputFit:
    """What the steps' input sizes explain: ``inputs_pct`` how much the job's input size varies from step to step (the
    most varying rank's series), ``explained`` the share of the step-time variance it explains (the least explained
    of the ranks moved), ``ranks`` how many ranks' steps were moved, ``ms_per_melem`` the median rank's slope (ms
    per million input elements)."""

    inputs_pct: float
    explained: float
    ranks: int
    ms_per_melem: float


def job_inputs(run: Run) -> dict[int, int]:
    """Each step's input size: the largest over the ranks that recorded it (the job's step waits for that rank)."""
    out: dict[int, int] = {}
    for rt in run.ranks:
        for s in rt.sidecar.step_times if rt.sidecar is not None else ():
            if s.input_elems is not None and s.input_elems > 0:
                out[s.number] = max(out.get(s.number, 0), s.input_elems)
    return out


def _pairs(n: int) -> tuple[np.ndarray, np.ndarray, float]:
    """The pairs of steps compared (a seeded sample of ``MAX_PAIRS`` where there are more) and how many pairs each
    stands for."""
    total = n * (n - 1) // 2
    if total <= MAX_PAIRS:
        i, j = np.triu_indices(n, k=1)
    else:  # drawn, not listed: a 10,000-step sidecar has 50 million pairs
        a, b = np.random.default_rng(0).integers(0, n, size=(2, MAX_PAIRS))
        a, b = a[a != b], b[a != b]
        i, j = np.minimum(a, b), np.maximum(a, b)
    return i, j, total / max(len(i), 1)


def slope(x: np.ndarray, y: np.ndarray) -> float:
    """Theil-Sen: the median of the slopes between pairs of steps of different sizes."""
    i, j, _w = _pairs(len(x))
    dx = x[j] - x[i]
    keep = dx != 0
    return float(np.median((y[j] - y[i])[keep] / dx[keep])) if keep.any() else 0.0


def rank_z(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's test that larger inputs take longer, as a normal deviate: the pairs ordered alike less those
    ordered apart, over its standard deviation where nothing ties the two (sizes may tie: their ties counted out).
    A line through a few steps of pure noise explains half their variance by chance (14% of 6-step series, 7% of
    8-step ones, 1,000 simulated each); the test keeps that out."""
    i, j, w = _pairs(len(x))
    s = float(np.sum(np.sign(x[j] - x[i]) * np.sign(y[j] - y[i]))) * w
    n = len(x)
    _, ties = np.unique(x, return_counts=True)
    var = (n * (n - 1) * (2 * n + 5) - float(np.sum(ties * (ties - 1) * (2 * ties + 5)))) / 18.0
    return s / np.sqrt(var) if var > 0 else 0.0


def _variation_pct(v: np.ndarray) -> float:
    m = float(np.mean(v))
    return float(np.std(v, ddof=1)) / m * 100.0 if len(v) > 1 and m > 0 else 0.0


def _fit(steps: Sequence[tuple[int, float]], sizes: Mapping[int, int]
         ) -> tuple[list[tuple[int, float]], float, float, float] | None:
    """One rank's steps moved to the median size, the size's variation (%), the share explained and the slope (ms
    per element); None where the size is one, too few steps have one, or it explains too little."""
    known = [(n, ms) for n, ms in steps if n in sizes]
    if len(known) < MIN_STEPS:
        return None
    x = np.array([sizes[n] for n, _ in known], dtype=float)
    y = np.array([ms for _, ms in known], dtype=float)
    pct = _variation_pct(x)
    off = len(x) - int(np.unique(x, return_counts=True)[1].max())  # the steps not of the most usual size
    if pct < MIN_INPUTS_PCT or off < max(MIN_OFF, len(x) // 4):
        return None  # one size, or one size but for a few steps (a last short batch): no line through them
    b = slope(x, y)
    if b <= 0 or rank_z(x, y) < MIN_Z:
        return None
    moved = y - b * (x - float(np.median(x)))
    centre = float(np.median(moved))
    sd = robust_sd(moved, centre)
    kept = np.abs(moved - centre) <= max(HAMPEL_SDS * sd, 1e-9 * abs(centre))  # no deviation: the equal ones
    raw_var = float(np.var(y[kept], ddof=1)) if kept.sum() > 1 else 0.0
    if raw_var <= 0:
        return None
    share = 1.0 - float(np.var(moved[kept], ddof=1)) / raw_var
    if share < MIN_EXPLAINED:
        return None
    at = dict(zip((n for n, _ in known), moved.tolist(), strict=True))
    return [(n, at.get(n, ms)) for n, ms in steps], pct, share, b


def adjust(series: Sequence[Series], sizes: Mapping[int, int]) -> tuple[list[dict[int, list[tuple[int, float]]]],
                                                                        InputFit | None]:
    """Each series (rank -> [(step, ms)]: the profiled steps, those outside the profiler) with every rank's steps
    moved to its median input size where the size explains them (``_fit``), and what it explained (None: no rank's
    steps moved)."""
    out: list[dict[int, list[tuple[int, float]]]] = []
    pcts: list[float] = []
    shares: list[float] = []
    slopes: list[float] = []
    ranks: set[int] = set()
    for one in series:
        moved: dict[int, list[tuple[int, float]]] = {}
        for rank, steps in one.items():
            fit = _fit(steps, sizes) if sizes else None
            moved[rank] = list(steps) if fit is None else fit[0]
            if fit is not None:
                ranks.add(rank)
                pcts.append(fit[1])
                shares.append(fit[2])
                slopes.append(fit[3])
        out.append(moved)
    if not shares:
        return out, None
    return out, InputFit(inputs_pct=max(pcts), explained=min(shares), ranks=len(ranks),
                         ms_per_melem=float(np.median(slopes)) * 1e6)


def describe(fit: InputFit, raw_pct: float | None) -> str:
    """'moved to one input size: the inputs vary by 21% from step to step and explain 96% of the steps' variation
    (19.2% before)'."""
    before = f" ({raw_pct:.1f}% as they came)" if raw_pct is not None else ""
    return (f"the steps' inputs vary in size by {fit.inputs_pct:.0f}% from step to step and explain "
            f"{fit.explained * 100:.0f}% of their variation{before}: the job's data, not a disturbance (the figures "
            f"above are at one input size)")
