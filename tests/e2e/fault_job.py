"""Fault-injection jobs for tests/e2e/test_faults.py; run as a script.

usage: python fault_job.py OUT MODE
  hook_raises[_plain]  world size 1; the user's comm hook raises (with commprof / without it)
  rank_dies            world size 2; rank 1 exits abruptly in step 3 (inside the active window)
"""

from __future__ import annotations

import datetime
import os
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel as DDP

import commprof
from commprof.workloads.demo import free_port


def bad_hook(state, bucket):
    raise ValueError("the user's hook failed")


def _model():
    torch.manual_seed(0)
    return DDP(torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 4)))


def hook_raises(out: str, traced: bool) -> int:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    model = _model()
    try:
        if traced:
            with commprof.trace(out, model=model, comm_hook=bad_hook) as prof:
                for _ in range(4):
                    model(torch.randn(8, 64)).sum().backward()
                    prof.step()
        else:
            model.register_comm_hook(None, bad_hook)
            for _ in range(4):
                model(torch.randn(8, 64)).sum().backward()
    except Exception as e:  # what the user sees
        print(f"USER SAW {type(e).__name__}: {e}".splitlines()[0])
        return 3
    finally:
        dist.destroy_process_group()
    return 0


def _dying_rank(rank: int, port: int, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2,
                            timeout=datetime.timedelta(seconds=20))
    model = _model()
    try:
        with commprof.trace(out, model=model) as prof:
            for i in range(6):
                if rank == 1 and i == 3:
                    os._exit(17)  # dies without cleanup, like a killed process
                model(torch.randn(8, 64)).sum().backward()
                prof.step()
    except Exception as e:
        print(f"rank {rank} saw {type(e).__name__}", flush=True)
        raise SystemExit(5) from None


def rank_dies(out: str) -> int:
    port = free_port()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_dying_rank, args=(r, port, out)) for r in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    codes = [p.exitcode for p in procs]
    print(f"EXIT CODES {codes}")
    return 0


if __name__ == "__main__":
    out, mode = sys.argv[1], sys.argv[2]
    if mode.startswith("hook_raises"):
        sys.exit(hook_raises(out, traced=not mode.endswith("_plain")))
    if mode == "rank_dies":
        sys.exit(rank_dies(out))
    sys.exit(f"unknown mode {mode}")
