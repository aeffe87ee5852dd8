"""The typed model: trace records (``trace``), sidecar records (``sidecar``), lanes kept on disk (``spilled``)."""

from .sidecar import BucketEvent, BucketLayout, DDPSettings, ModuleCall, ParamInfo, Sidecar, StepTime
from .spilled import SpillDir, SpilledArray, SpilledLane
from .trace import Collective, DPCall, HostTransfers, Lane, ProcessGroup, RankTrace, Run, Step

__all__ = ["BucketEvent", "BucketLayout", "Collective", "DDPSettings", "DPCall", "HostTransfers", "Lane",
           "ModuleCall", "ParamInfo", "ProcessGroup", "RankTrace", "Run", "Sidecar", "SpillDir", "SpilledArray",
           "SpilledLane", "Step", "StepTime"]
