"""The contract of an analysis family: what every family hands the report, in one typed record.

A family (DDP, FSDP2, pipeline, DataParallel, input transfers, memory, the production monitor, cross-rank) is a
function ``section(shared) -> Section | None`` (``analysis/families.py`` lists them; ``analysis/shared.py`` is
what each may read).  It returns None when the run has nothing of it.  Its ``Section`` carries:

- ``findings``: measured facts worth a user's attention, each with the ``claim`` the arbiter reads
  (``analysis/arbiter.py``) when two families speak about the same time;
- ``advice``: concrete changes with their predicted step;
- ``whatifs``: every setting the family's model predicted, advised or not, each with its predicted step, the
  band of that prediction (``predicted_range_ms``) and, where the setting changes memory, its predicted peak;
- ``check``: the family's model replaying the traced settings against the traced run (its own error);
- ``detail``: the family's own record, for the renderers that draw it (``render/views.py``).

``Finding`` and ``Advice`` live here (and not in ``findings``, which phrases them) so that the contract imports
nothing of the families.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from .replay.core import error_pct

D = TypeVar("D")

# what a finding claims about the run's time, for the arbiter; "" claims nothing the arbiter weighs
EXPOSED = "exposed"  # communication is exposed (measured)
NOTHING_TO_GAIN = "nothing_to_gain"  # a model says no setting of its family would gain


@dataclass(frozen=True, slots=True)
class Finding:
    """A measured fact worth a user's attention, with the numbers that back it."""

    severity: str  # "high", "medium", "info"
    text: str
    # EXPOSED (communication exposed: on a rank's step, or on the job's critical path), NOTHING_TO_GAIN or "" (see the
    # arbiter)
    claim: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Advice:
    """A concrete change with its predicted effect."""

    knob: str
    value: object
    baseline_step_ms: float
    predicted_step_ms: float
    why: str
    # the other settings its prediction assumes, where they differ from the traced run's (the advised bucket cap
    # under a compression hook): what ``commprof compare`` checks it against
    with_settings: tuple[tuple[str, object], ...] = ()
    # [low, high] of the predicted step (``uncertainty.band``): the model's error and the traced run's noise
    predicted_range_ms: tuple[float, float] | None = None
    # how many times the calibration target's error the prediction carries (``replay.core.gain``; 0 where the
    # family does not say): its band's term, and the sentence that says why the band is wide (``bands``)
    calibration_gain: float = 0.0

    def setting(self, fmt: Callable[[object], str] = str) -> str:
        """"comm_hook = fp16_compress_hook with bucket_cap_mb = 4": the change and what its prediction assumes
        beside it (a user who applies the knob alone gets another step)."""
        extra = "".join(f" with {k} = {fmt(v)}" for k, v in self.with_settings)
        return f"{self.knob} = {fmt(self.value)}{extra}"


@dataclass(frozen=True, slots=True, kw_only=True)
class WhatIf:
    """One setting a family's model replayed, and what it predicts under it."""

    knob: str
    value: object
    predicted_step_ms: float
    predicted_range_ms: tuple[float, float] | None = None  # [low, high] the measured step should fall in
    predicted_peak_bytes: int | None = None  # where the setting changes memory
    predicted_exposed_ms: float | None = None  # communication left exposed, where the model says
    assumed: tuple[str, ...] = ()  # costs the prediction uses that nothing in the run measured
    # the other settings the prediction assumes beside ``knob`` (parallelism = fsdp2 with reshard_after_forward)
    with_settings: tuple[tuple[str, object], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    """A family's model replaying the traced settings against the traced run (uncalibrated): its own error."""

    rank: int | None
    model_step_ms: float
    measured_step_ms: float
    tolerance_pct: float  # within it, the model may advise

    @property
    def error_pct(self) -> float:
        return error_pct(self.model_step_ms, self.measured_step_ms)

    @property
    def ok(self) -> bool:
        return abs(self.error_pct) <= self.tolerance_pct


@dataclass(frozen=True, slots=True, kw_only=True)
class Section(Generic[D]):
    """What one analysis family says about a run."""

    family: str  # "ddp", "fsdp", "pipeline", "dataparallel", "transfers", "memory", "production", "crossrank"
    detail: D  # the family's own record
    findings: tuple[Finding, ...] = ()
    advice: tuple[Advice, ...] = ()
    whatifs: tuple[WhatIf, ...] = ()
    check: Check | None = None
