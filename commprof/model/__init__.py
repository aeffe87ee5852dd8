"""The typed model: trace records (``trace``), sidecar records (``sidecar``), lanes kept on disk (``spilled``)."""

from .rates import MQ, MTP, PQT, PRODUCT_KINDS, ProbeRates, ThinProduct
from .sidecar import BucketEvent, BucketLayout, DDPSettings, ModuleCall, ParamInfo, Sidecar, StepTime
from .spilled import SpillDir, SpilledArray, SpilledLane
from .trace import Collective, DPCall, GradEvents, HostTransfers, Lane, ProcessGroup, RankTrace, Run, Step

__all__ = ["BucketEvent", "BucketLayout", "Collective", "DDPSettings", "DPCall", "GradEvents", "HostTransfers",
           "Lane", "ModuleCall", "MQ", "MTP", "ParamInfo", "PQT", "ProbeRates", "ProcessGroup", "PRODUCT_KINDS",
           "RankTrace", "Run", "Sidecar", "SpillDir", "SpilledArray", "SpilledLane", "Step", "StepTime",
           "ThinProduct"]
