"""The environment a run was started in, recorded in the sidecar: the versions that shape it (``versions``) and the
variables that change how fast a job runs (``env``), so that two runs
whose steps differ can say whether they were set up alike (``commprof compare`` names the ones that differ).

Recorded: the memory allocator's (glibc's ``MALLOC_*``, ``GLIBC_TUNABLES``, ``LD_PRELOAD``: jemalloc, tcmalloc),
the CPU thread pools' (OpenMP, MKL, OpenBLAS), the communication libraries' (NCCL, gloo, UCX, libfabric) and
PyTorch's own (the CUDA caching allocator, distributed debug levels, the Flight Recorder).  Nothing else is read:
no credentials, no paths of the user's own.

Why: launchers set these behind the user's back.  Dask's LocalCluster, for one, sets MALLOC_TRIM_THRESHOLD_=65536 in
the process that starts it (and so in every job that process starts later): glibc then returns freed memory at once
and maps each large block afresh, and an FSDP2 job on CPU measured here ran 1.3-1.4x slower per step, its training
thread with 1.6-2x the CPU time, with nothing else in its traces to say why (2026-12-06, tests/conftest.py).
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from typing import Any

import torch

PREFIXES = ("MALLOC_", "OMP_", "KMP_", "GOMP_", "MKL_", "OPENBLAS_", "NCCL_", "TORCH_NCCL_", "GLOO_", "UCX_", "FI_",
            "CUDA_", "TORCH_FR_")
NAMES = ("GLIBC_TUNABLES", "LD_PRELOAD", "PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_ALLOC_CONF", "TORCH_DISTRIBUTED_DEBUG",
         "TORCH_CPP_LOG_LEVEL", "PYTHONMALLOC", "PYTHONTRACEMALLOC", "PYTHONDEVMODE")
MAX_VALUE_CHARS = 256


def recorded(name: str) -> bool:
    return name in NAMES or name.startswith(PREFIXES)


def performance_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The recorded variables that are set, by name (values cut to MAX_VALUE_CHARS)."""
    env = os.environ if environ is None else environ
    return {k: str(v)[:MAX_VALUE_CHARS] for k, v in sorted(env.items()) if recorded(k)}


def versions() -> dict[str, Any]:
    """The versions that shape a run: commprof's, torch's, Python's, CUDA's and NCCL's (None where absent)."""
    from .._version import __version__

    nccl = None
    try:
        if torch.cuda.is_available():
            v = torch.cuda.nccl.version()
            nccl = ".".join(map(str, v)) if isinstance(v, tuple) else str(v)
    except Exception:
        pass
    return {"commprof": __version__, "torch": torch.__version__, "python": platform.python_version(),
            "cuda": torch.version.cuda, "nccl": nccl}
