"""The typed model: trace records (``trace``), sidecar records (``sidecar``), lanes kept on disk (``spilled``)."""

from .alloc import AllocCalls, Mark, StepAllocs
from .fsdp import FSDPEvent, FSDPSettings, FSDPUnit
from .monitor import (
                      Crash,
                      Frame,
                      FREntry,
                      HangDump,
                      Issue,
                      MonitorRank,
                      MonitorRun,
                      MonitorStep,
                      RollupCollective,
                      ThreadStack,
)
from .rates import MQ, MTP, PQT, PRODUCT_KINDS, Orthogonalization, ProbeRates, ThinProduct
from .sidecar import BucketEvent, BucketLayout, DDPSettings, ModuleCall, ParamInfo, Sidecar, StepTime
from .spilled import SpillDir, SpilledArray, SpilledLane
from .trace import (
                      EMBEDDING_TABLES,
                      EXPERTS,
                      Collective,
                      DPCall,
                      DPWork,
                      GradEvents,
                      HostTransfers,
                      Lane,
                      OpNames,
                      ProcessGroup,
                      RankTrace,
                      Run,
                      Step,
)

__all__ = ["AllocCalls", "Mark", "StepAllocs", "BucketEvent", "BucketLayout", "Collective", "Crash", "DDPSettings",
           "DPCall", "DPWork", "EMBEDDING_TABLES", "EXPERTS", "Frame", "FREntry",
           "FSDPEvent", "FSDPSettings", "FSDPUnit", "GradEvents", "HangDump", "HostTransfers", "Issue", "Lane",
           "ModuleCall", "OpNames", "MonitorRank", "MonitorRun", "MonitorStep", "MQ", "MTP", "ParamInfo", "PQT",
           "Orthogonalization", "ProbeRates", "ProcessGroup", "PRODUCT_KINDS", "RankTrace", "RollupCollective", "Run",
           "Sidecar", "SpillDir", "SpilledArray", "SpilledLane", "Step", "StepTime", "ThinProduct", "ThreadStack"]
