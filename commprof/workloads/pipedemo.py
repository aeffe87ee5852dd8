"""A GPipe-style pipeline over gloo: equal layers split across processes, micro-batches, activations and
their gradients exchanged with send/recv.  Used by the partition advisor's proof (benchmarks/ and tests/).

Each rank is one stage; ``split`` says how many of the layers each stage holds (e.g. [6, 2] of 8).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from .demo import finish, free_port, write_step_times

DEFAULTS: dict[str, Any] = {"layers": 8, "width": 1536, "batch": 256, "microbatches": 4, "split": [6, 2],
                            "steps": 10, "trace": False, "times": None, "wait": 1, "warmup": 1, "active": 3,
                            "seed": 0, "threads": 1}


def build_layers(cfg: dict[str, Any]):
    import torch

    torch.manual_seed(cfg["seed"])
    return [torch.nn.Sequential(torch.nn.Linear(cfg["width"], cfg["width"]), torch.nn.ReLU())
            for _ in range(cfg["layers"])]


def _gpipe_step(stage: Any, x: Any, rank: int, world: int, m: int, width: int) -> None:
    """One GPipe step on this stage: every micro-batch forward (receiving from the previous stage, sending to the
    next), then every backward in reverse (gradients the other way)."""
    import torch
    import torch.distributed as dist

    mb = x.shape[0] // m
    last = world - 1
    ins, outs = [], []
    for k in range(m):  # all forwards
        if rank == 0:
            inp = x[k * mb:(k + 1) * mb]
        else:
            inp = torch.empty(mb, width)
            dist.recv(inp, rank - 1)
            inp.requires_grad_()
        o = stage(inp)
        if rank < last:
            dist.send(o.detach(), rank + 1)
        ins.append(inp)
        outs.append(o)
    for k in reversed(range(m)):  # then all backwards
        if rank == last:
            outs[k].pow(2).mean().backward()
        else:
            g = torch.empty_like(outs[k])
            dist.recv(g, rank + 1)
            outs[k].backward(g)
        grad = ins[k].grad
        if rank > 0 and grad is not None:
            dist.send(grad, rank - 1)


def gpipe_worker(rank: int, world: int, port: int, out: str, cfg_in: dict[str, Any]) -> None:
    import torch
    import torch.distributed as dist

    from ..capture.session import trace

    cfg = {**DEFAULTS, **cfg_in}
    torch.set_num_threads(cfg["threads"])
    if sum(cfg["split"]) != cfg["layers"] or len(cfg["split"]) != world:
        raise ValueError(f"split {cfg['split']} does not cover {cfg['layers']} layers on {world} stages")
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        layers = build_layers(cfg)
        lo = sum(cfg["split"][:rank])
        mine = layers[lo: lo + cfg["split"][rank]]
        stage = torch.nn.Sequential(*mine)
        named = {f"layer{lo + i}": m for i, m in enumerate(mine)}
        opt = torch.optim.SGD(stage.parameters(), lr=0.01)
        gen = torch.Generator().manual_seed(7)
        ctx: Any = (trace(out, wait=cfg["wait"], warmup=cfg["warmup"], active=cfg["active"], modules=named)
                    if cfg["trace"] else contextlib.nullcontext())
        step_ns: list[int] = []
        with ctx as prof:
            for _ in range(cfg["steps"]):
                t0 = time.perf_counter_ns()
                x = torch.randn(cfg["batch"], cfg["width"], generator=gen)
                _gpipe_step(stage, x, rank, world, cfg["microbatches"], cfg["width"])
                opt.step()
                opt.zero_grad(set_to_none=True)
                if prof is not None:
                    prof.step()
                step_ns.append(time.perf_counter_ns() - t0)
        write_step_times(cfg["times"], rank, step_ns)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def launch(out: str, **cfg: Any) -> None:
    import torch.multiprocessing as mp

    split = cfg.get("split", DEFAULTS["split"])
    mp.spawn(finish, args=(gpipe_worker, len(split), free_port(), str(out), cfg), nprocs=len(split), join=True)
