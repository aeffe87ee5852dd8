"""The built-in workload: a small MLP trained with DDP over gloo on CPU, traced with commprof.

``python -m commprof demo`` trains it in two processes, writes the traces, then reports.  The same
worker serves the tests and benchmarks (``train_worker``), with knobs for a slow rank, bucket size, comm hooks and
gradient accumulation (``accumulate``: k micro-batches per optimizer step, the first k - 1 under ``no_sync()``; the
loss is not divided by k, so the step size grows k-fold: a timing knob, not a recipe), and micro-batches within a
step (``micro_batches``: m forward/backward passes per profiler step, the first m - 1 under ``no_sync()`` only with
``no_sync=True``: without it DDP all-reduces the gradients after each, the common mistake).
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

DEFAULTS: dict[str, Any] = {
    "steps": 8, "width": 1024, "layers": 6, "batch": 64, "bucket_cap_mb": 4.0, "seed": 0,
    "wait": 1, "warmup": 1, "active": 3, "trace": True, "slow_rank": None, "slow_ms": 0.0,
    "stall_step": None, "slow_from": None, "slow_plan": None, "accumulate": 1, "micro_batches": 1, "no_sync": True,
    "hook": None, "threads": 1, "lr": 0.01, "gradient_as_bucket_view": False, "result": None,
    "master": "127.0.0.1", "times": None, "profile_memory": False, "pin": False,
    "rank_env": {},  # {rank: {name: value}}: variables set in that rank alone, as a launcher that set one node apart
    "rank_batch": {},  # {rank: batch}: a batch of its own for that rank (uneven shards), else "batch"
}
# ``python -m commprof demo``'s steps: the profiled 2-4, then six after the export's step to measure the run's noise
# and calibrate the what-ifs (the tests' and benchmarks' runs keep DEFAULTS["steps"] unless they say otherwise)
CLI_STEPS = 12


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_step_times(folder: str | None, rank: int, step_ns: list[int]) -> None:
    """The workload's own step wall times (``times{rank}.json``), for benchmarks that measure without commprof."""
    if folder:
        with open(os.path.join(folder, f"times{rank}.json"), "w") as f:
            json.dump(step_ns, f)


def build_model(cfg: dict[str, Any]):
    import torch

    torch.manual_seed(cfg["seed"])
    layers: list[Any] = []
    for _ in range(cfg["layers"]):
        layers += [torch.nn.Linear(cfg["width"], cfg["width"]), torch.nn.ReLU()]
    layers.append(torch.nn.Linear(cfg["width"], 10))
    return torch.nn.Sequential(*layers)


def _hook(cfg: dict[str, Any]) -> tuple[Any, Any]:
    """The DDP comm hook and its state the config asks for: None, "fp16", or "powersgd:R" (compressing from the
    second step on)."""
    if cfg["hook"] == "fp16":
        from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
        return default_hooks.fp16_compress_hook, None
    if str(cfg["hook"]).startswith("powersgd:"):
        from torch.distributed.algorithms.ddp_comm_hooks import powerSGD_hook as psgd
        state = psgd.PowerSGDState(process_group=None, start_powerSGD_iter=2,
                                   matrix_approximation_rank=int(str(cfg["hook"]).split(":")[1]))
        return psgd.powerSGD_hook, state
    return None, None


def _context(cfg: dict[str, Any], ddp: Any, out: str, rank: int) -> Any:
    """What the loop runs under: commprof.trace, torch.profiler alone (the overhead benchmark's baseline), or
    nothing."""
    import contextlib

    hook, state = _hook(cfg)
    if cfg.get("monitor"):
        from ..capture.monitor import MonitorSession

        if hook is not None:
            ddp.register_comm_hook(state, hook)
        return MonitorSession(out, every=int(cfg.get("monitor_every", 100)))
    if cfg["trace"] and not cfg.get("plain_profiler"):
        from ..capture.session import trace

        return trace(out, model=ddp, wait=cfg["wait"], warmup=cfg["warmup"], active=cfg["active"],
                     comm_hook=hook, comm_state=state, profile_memory=cfg["profile_memory"])
    if hook is not None:
        ddp.register_comm_hook(state, hook)
    if cfg.get("plain_profiler"):
        return plain_profiler(cfg, out, rank)
    return contextlib.nullcontext()


def plain_profiler(cfg: dict[str, Any], out: str, rank: int, profile_memory: bool = False) -> Any:
    """torch.profiler alone, on the workload's schedule, writing ``plain{rank}.json.gz``: traces made without
    commprof (the advisor's plain-trace proofs, the overhead benchmark's baseline)."""
    from torch.profiler import ProfilerActivity, profile, schedule

    return profile(activities=[ProfilerActivity.CPU], record_shapes=True, profile_memory=profile_memory,
                   schedule=schedule(wait=cfg["wait"], warmup=cfg["warmup"], active=cfg["active"]),
                   on_trace_ready=lambda p: p.export_chrome_trace(os.path.join(out, f"plain{rank}.json.gz")))


def train_worker(rank: int, world: int, port: int, out: str, cfg_in: dict[str, Any]) -> None:
    """One rank: init gloo, wrap the model in DDP, train ``steps`` steps (traced unless trace=False)."""
    import time

    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    cfg = {**DEFAULTS, **cfg_in}
    os.environ.update(cfg["rank_env"].get(rank) or cfg["rank_env"].get(str(rank)) or {})
    torch.set_num_threads(cfg["threads"])
    if cfg["pin"] and hasattr(os, "sched_setaffinity"):  # each rank on a CPU of its own, as a launcher binding
        cpus = sorted(os.sched_getaffinity(0))  # ranks to cores would place it (torchrun --cpu-bind / numactl)
        os.sched_setaffinity(0, {cpus[rank % len(cpus)]})
    dist.init_process_group("gloo", init_method=f"tcp://{cfg['master']}:{port}", rank=rank, world_size=world)
    try:
        model = build_model(cfg)
        ddp = DDP(model, bucket_cap_mb=cfg["bucket_cap_mb"], gradient_as_bucket_view=cfg["gradient_as_bucket_view"])
        opt = torch.optim.SGD(ddp.parameters(), lr=cfg["lr"])
        gen = torch.Generator().manual_seed(1000 + rank)
        step_ns: list[int] = []
        k, m = max(int(cfg["accumulate"]), 1), max(int(cfg["micro_batches"]), 1)
        with _context(cfg, ddp, out, rank) as prof:
            for i in range(cfg["steps"]):
                t0 = time.perf_counter_ns()
                sync = (i + 1) % k == 0
                for j in range(m):
                    _micro_batch(cfg, ddp, gen, rank, i, not sync or (cfg["no_sync"] and j < m - 1), slow=j == 0)
                if sync:
                    opt.step()
                    opt.zero_grad(set_to_none=True)
                if prof is not None:
                    prof.step()
                step_ns.append(time.perf_counter_ns() - t0)
        write_step_times(cfg["times"], rank, step_ns)
        if cfg["result"]:
            torch.save({k: v.detach().clone() for k, v in model.state_dict().items()},
                       os.path.join(cfg["result"], f"params{rank}.pt"))
        # the workload's own barrier (not commprof's): rank 0 hosts the store, so no rank may tear
        # down its process group while another still talks to it
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _micro_batch(cfg: dict[str, Any], ddp: Any, gen: Any, rank: int, i: int, quiet: bool, slow: bool) -> None:
    """One forward/backward pass (under ``no_sync()`` where ``quiet``); ``slow``: where the injected delay goes."""
    import contextlib
    import time

    import torch

    batch = int(cfg["rank_batch"].get(rank) or cfg["rank_batch"].get(str(rank)) or cfg["batch"])
    x = torch.randn(batch, cfg["width"], generator=gen)
    y = torch.randint(0, 10, (batch,), generator=gen)
    with ddp.no_sync() if quiet else contextlib.nullcontext():
        loss = torch.nn.functional.cross_entropy(ddp(x), y)
        plan = (cfg["slow_plan"] or {}).get(rank) or (cfg["slow_plan"] or {}).get(str(rank))
        if slow and cfg["slow_ms"] and (plan[0] <= i <= plan[1] if plan else (
                cfg["slow_rank"] == rank and cfg["stall_step"] in (None, i) and i >= (cfg["slow_from"] or 0))):
            # an injected straggler, late to every bucket; with stall_step, a one-off stall at that step; with
            # slow_from, slow from that step on; slow_plan {rank: [first, last]}: slow in those steps
            time.sleep(cfg["slow_ms"] / 1000.0)
        loss.backward()


def spawn(worker: Any, out: str | Path, nproc: int, cfg: dict[str, Any]) -> None:
    """Run ``worker(rank, world, port, out, cfg)`` in ``nproc`` processes (torch.multiprocessing, spawn)."""
    import torch.multiprocessing as mp

    caller = os.environ.get("OMP_NUM_THREADS")
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # for the ranks; the caller's environment is left as it was
    try:
        mp.spawn(finish, args=(worker, nproc, free_port(), str(out), cfg), nprocs=nproc, join=True)
    finally:
        if caller is None:
            os.environ.pop("OMP_NUM_THREADS", None)


def finish(rank: int, worker: Any, *args: Any) -> None:
    """``worker(rank, *args)``, then, once it returned (its files written, its process group destroyed), this
    process ends at once, without the interpreter's teardown: gloo's threads can abort it there ("terminate called
    without an active exception", SIGABRT, seen once in about 25 runs of the test suite after every rank had
    written its results: a CI run of 2026-12-06, an fp16-hook job without commprof), which fails a finished job.
    An exception in the worker propagates as before."""
    worker(rank, *args)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def worker_cli(worker: Any, argv: list[str]) -> int:
    """``RANK WORLD MASTER PORT OUT CFG_JSON``: one rank of ``worker`` in this process (e.g. inside a netns), ended
    as ``finish`` ends it."""
    rank, world, master, port, out, cfg = argv
    finish(int(rank), worker, int(world), int(port), out, {**json.loads(cfg), "master": master})
    return 0


def launch(out: str | Path, nproc: int = 2, **cfg: Any) -> None:
    """Run ``train_worker`` in ``nproc`` processes."""
    spawn(train_worker, out, nproc, cfg)


if __name__ == "__main__":  # python -m commprof.workloads.demo RANK WORLD MASTER PORT OUT CFG_JSON
    sys.exit(worker_cli(train_worker, sys.argv[1:]))
