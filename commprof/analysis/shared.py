"""What every analysis family may read: the run and the analyses common to all, computed once by ``analyze()``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..model import MonitorRun, Run
from .bandwidth import Bandwidth
from .crossrank.matching import CrossRank
from .crossrank.p2p import NO_LINKS, Links
from .overlap import RankOverlap
from .perrank import RankDigest, RankResults
from .uncertainty.maths import Noise


@dataclass(frozen=True, slots=True, kw_only=True)
class Shared:
    """The inputs of every family's ``section(shared)``."""

    run: Run
    steps: tuple[int, ...] | None  # the user's restriction, None = all
    per_rank: tuple[RankResults, ...]  # what each rank alone gave (overlap, DDP bucket rows, input transfers)
    overlaps: tuple[RankOverlap, ...]
    cross: CrossRank  # collectives matched across ranks, clocks, waits, stragglers
    bandwidth: Bandwidth  # the α-β fits of the run's own collectives
    # rank -> the step as it is now (``steptimes.step_now_ms``): what replays are calibrated on, advice measured against
    step_now_ms: dict[int, float]
    step_now_basis: dict[int, str]  # rank -> where its step_now_ms comes from (steptimes.OUTSIDE, GIVEN, PROFILED)
    digests: Mapping[int, RankDigest]  # what the engine's map step computed per rank
    monitor: MonitorRun | None = None  # the files ``commprof.monitor`` wrote beside the traces, if any
    noise: Noise = Noise()  # how disturbed the traced run was: every prediction's band widens with it
    links: Links = NO_LINKS  # send/recv pairs matched across ranks (pipelines), on the collectives' clocks
    whatif: tuple[str, ...] = ()  # what-ifs the user asked to see in the findings whatever the run ("fsdp", "ddp")
    # the sections of the families listed before this one in ``FAMILIES`` (a family may build on an earlier one's
    # model: the memory family's DDP -> FSDP2 what-if on the DDP advisor's calibration); ``Section`` records
    earlier: tuple[Any, ...] = ()

    def section(self, family: str) -> Any:
        """The section of an earlier family, or None."""
        return next((s for s in self.earlier if s.family == family), None)
