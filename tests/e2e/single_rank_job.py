"""A one-process DDP job (gloo, world size 1) for fault tests; run as a script by the tests.

usage: python single_rank_job.py OUT MODE   (MODE: ok | raise | interrupt | plain | cycles | compiled)
"""

from __future__ import annotations

import json
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

import commprof
from commprof.workloads.demo import free_port


def main(out: str, mode: str) -> int:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    torch.manual_seed(0)
    model = DDP(torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 4)))
    if mode == "compiled":  # what torch.compile returns, given to commprof (the eager backend: no C++ compiler)
        model = torch.compile(model, backend="eager")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    if mode == "plain":  # plain torch.profiler, no commprof: a trace without a sidecar
        from torch.profiler import profile, schedule
        with profile(schedule=schedule(wait=1, warmup=1, active=2),
                     on_trace_ready=lambda p: p.export_chrome_trace(f"{out}/rank0.pt.trace.json.gz")) as prof:
            for _ in range(5):
                model(torch.randn(8, 64)).sum().backward()
                opt.step()
                opt.zero_grad()
                prof.step()
        return 0
    if mode == "cycles":  # two profiler cycles: whether torch.profiler's results are held after each is written
        with commprof.trace(out, model=model, wait=1, warmup=1, active=2, repeat=2) as prof:
            held = []
            for _ in range(10):
                model(torch.randn(8, 64)).sum().backward()
                opt.step()
                opt.zero_grad()
                prof.step()
                held.append(prof._prof.profiler is not None)
        print("held", json.dumps(held), "exports", prof._exports)
        dist.destroy_process_group()
        return 0
    try:
        with commprof.trace(out, model=model, wait=1, warmup=1, active=3) as prof:
            for i in range(6):
                model(torch.randn(8, 64)).sum().backward()
                opt.step()
                opt.zero_grad()
                if i == 3 and mode == "raise":
                    raise ValueError("boom from the user's code")
                if i == 3 and mode == "interrupt":
                    raise KeyboardInterrupt
                prof.step()
    except ValueError as e:
        print(f"caught {type(e).__name__}: {e}")
        return 3
    except KeyboardInterrupt:
        print("caught KeyboardInterrupt")
        return 4
    finally:
        dist.destroy_process_group()
    print("training finished")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
