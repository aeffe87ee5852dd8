"""Jobs that make the inputs of tests/e2e/test_inputs.py for real; run as a script.

usage: python inputs_job.py OUT MODE [WIDTH]
  plain       world size 2, DDP over gloo, plain torch.profiler (no commprof): rank{R}.json, steps 2-4
  cycles      world size 2, plain torch.profiler with a repeating schedule (two cycles, steps 2-3 and 6-7),
              written by tensorboard_trace_handler (host_pid.<ms>.pt.trace.json, one file per cycle and rank)
  no_step     world size 1, commprof.trace() around a loop that never calls prof.step()
  short_loop  world size 1, commprof.trace() around 3 steps, fewer than its schedule's 1 + 1 + 3
"""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.profiler import ProfilerActivity, profile, schedule, tensorboard_trace_handler

import commprof
from commprof.workloads.demo import finish, free_port


def _model(width: int) -> DDP:
    torch.manual_seed(0)
    return DDP(torch.nn.Sequential(torch.nn.Linear(width, width), torch.nn.ReLU(), torch.nn.Linear(width, width),
                                   torch.nn.ReLU(), torch.nn.Linear(width, 4)), bucket_cap_mb=0.05)


def _train(model: DDP, width: int, steps: int, prof) -> None:
    for _ in range(steps):
        model(torch.randn(16, width)).sum().backward()
        if prof is not None:
            prof.step()


def _rank(rank: int, port: int, out: str, mode: str, width: int) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        model = _model(width)
        if mode == "cycles":
            sched = schedule(wait=1, warmup=1, active=2, repeat=2)
            ready = tensorboard_trace_handler(out)
            steps = 9
        else:
            sched = schedule(wait=1, warmup=1, active=3)
            ready = lambda p: p.export_chrome_trace(os.path.join(out, f"rank{rank}.json"))  # noqa: E731
            steps = 6
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True, schedule=sched,
                     on_trace_ready=ready) as prof:
            _train(model, width, steps, prof)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _one_rank(out: str, mode: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    try:
        model = _model(64)
        with commprof.trace(out, model=model, probe=False) as prof:
            if mode == "no_step":
                for _ in range(4):
                    model(torch.randn(16, 64)).sum().backward()  # the user forgot prof.step()
            else:
                _train(model, 64, 3, prof)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    out, mode = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    if mode in ("plain", "cycles"):
        width = int(sys.argv[3]) if len(sys.argv) > 3 else 128
        mp.spawn(finish, args=(_rank, free_port(), out, mode, width), nprocs=2, join=True)
    elif mode in ("no_step", "short_loop"):
        _one_rank(out, mode)
    else:
        sys.exit(f"unknown mode {mode}")
