"""An FSDP2 (``fully_shard``) workload over gloo on CPU, for the FSDP analysis' tests, benchmarks and proofs.

Two models: ``mlp`` (``layers`` units of Linear(width, width) + ReLU, then a 10-way head) and ``transformer``
(``layers`` pre-norm transformer blocks of ``width`` with ``heads`` heads and a 4x MLP, over sequences of ``seq``
tokens, then a 10-way head).  Each block / layer is one FSDP unit, the root another.  Knobs:
``reshard_after_forward`` (for the units; the root keeps FSDP's default) and ``prefetch`` (explicit forward and
backward prefetch of that many units; 0 = FSDP's implicit prefetching); ``wrap``: "blocks" (the head stays in the
root) or "children" (every top-level child is a unit: what the DDP -> FSDP2 what-if assumes); ``parallel``: "fsdp"
or "ddp" (the same model under DistributedDataParallel); ``optimizer``: "sgd" or "adam"; ``micro_batches``: m
forward/backward passes per step, the first m - 1 without reduce-scattering only with ``sync_last_only=True``
(``set_requires_gradient_sync``; FSDP2 alone).  With ``times``, each
rank also writes ``state{rank}.json``: the bytes of its parameters (local shards), optimizer state and (DDP) buckets,
measured on the tensors after training.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from pathlib import Path
from typing import Any

from .demo import plain_profiler, spawn, worker_cli, write_step_times

DEFAULTS: dict[str, Any] = {
    "model": "mlp", "steps": 9, "width": 1024, "layers": 8, "batch": 128, "seq": 64, "heads": 8, "seed": 0,
    "wait": 1, "warmup": 1, "active": 3, "trace": True, "plain_profiler": False, "threads": 1, "lr": 0.01,
    "reshard_after_forward": True, "prefetch": 0, "result": None, "master": "127.0.0.1", "times": None,
    "profile_memory": False, "parallel": "fsdp", "wrap": "blocks", "optimizer": "sgd", "micro_batches": 1,
    "sync_last_only": False,
}
# the FSDP2 -> DDP what-if's models, trained by its proof and its bands benchmark (tests/e2e/test_fsdp2ddp_jobs.py,
# benchmarks/bench_fsdp2ddp_bands.py): two widths and depths, Adam's state, the head left in the root (wrap="blocks")
PARALLEL_MODELS: dict[str, dict[str, Any]] = {
    "mlp": dict(model="mlp", width=1024, layers=8, batch=128),
    "transformer": dict(model="transformer", width=256, layers=4, batch=16, seq=64, heads=4),
    "mlp-wide-adam": dict(model="mlp", width=1536, layers=4, batch=64, optimizer="adam"),
    "transformer-deep-blocks": dict(model="transformer", width=192, layers=6, batch=16, seq=64, heads=4,
                                    optimizer="adam", wrap="blocks")}
PARALLEL_COMMON: dict[str, Any] = dict(wrap="children", wait=1, warmup=1, active=3)


def build(cfg: dict[str, Any]) -> tuple[Any, list[Any]]:
    """The model and its units, in forward order (before sharding)."""
    import torch

    torch.manual_seed(cfg["seed"])
    w = cfg["width"]
    units: list[Any]
    if cfg["model"] == "transformer":
        units = [torch.nn.TransformerEncoderLayer(w, cfg["heads"], 4 * w, dropout=0.0, batch_first=True,
                                                  norm_first=True) for _ in range(cfg["layers"])]
    else:
        units = [torch.nn.Sequential(torch.nn.Linear(w, w), torch.nn.ReLU()) for _ in range(cfg["layers"])]
    return torch.nn.Sequential(*units, torch.nn.Linear(w, 10)), units


def shard(model: Any, units: list[Any], cfg: dict[str, Any]) -> None:
    from torch.distributed.fsdp import fully_shard

    if cfg["wrap"] == "children":
        units = list(model.children())
    for u in units:
        fully_shard(u, reshard_after_forward=bool(cfg["reshard_after_forward"]))
    fully_shard(model)
    k = int(cfg["prefetch"])
    if k > 0:
        for i, u in enumerate(units):
            u.set_modules_to_forward_prefetch(units[i + 1:i + 1 + k])
            u.set_modules_to_backward_prefetch(list(reversed(units[max(i - k, 0):i])))


def _batch(cfg: dict[str, Any], gen: Any) -> tuple[Any, Any]:
    import torch

    if cfg["model"] == "transformer":
        x = torch.randn(cfg["batch"], cfg["seq"], cfg["width"], generator=gen)
        y = torch.randint(0, 10, (cfg["batch"], cfg["seq"]), generator=gen)
        return x, y
    return torch.randn(cfg["batch"], cfg["width"], generator=gen), torch.randint(0, 10, (cfg["batch"],),
                                                                                 generator=gen)


def _micro_batches(cfg: dict[str, Any], model: Any, gen: Any) -> None:
    """One step's forward/backward passes (``micro_batches``; with ``sync_last_only`` the gradients reduce-scattered
    after the last alone)."""
    import torch

    m = max(int(cfg["micro_batches"]), 1)
    for j in range(m):
        if m > 1 and cfg["sync_last_only"] and cfg["parallel"] == "fsdp":
            model.set_requires_gradient_sync(j == m - 1)
        x, y = _batch(cfg, gen)
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 10), y.reshape(-1))
        loss.backward()


def _context(cfg: dict[str, Any], model: Any, out: str, rank: int) -> Any:
    import contextlib

    if cfg["trace"] and not cfg["plain_profiler"]:
        from ..capture.session import trace

        return trace(out, model=model, wait=cfg["wait"], warmup=cfg["warmup"], active=cfg["active"],
                     profile_memory=cfg["profile_memory"])
    if cfg["plain_profiler"]:
        return plain_profiler(cfg, out, rank, cfg["profile_memory"])
    return contextlib.nullcontext()


def train_worker(rank: int, world: int, port: int, out: str, cfg_in: dict[str, Any]) -> None:
    import torch
    import torch.distributed as dist

    cfg = {**DEFAULTS, **cfg_in}
    torch.set_num_threads(cfg["threads"])
    dist.init_process_group("gloo", init_method=f"tcp://{cfg['master']}:{port}", rank=rank, world_size=world)
    try:
        model, units = build(cfg)
        if cfg["parallel"] == "ddp":
            from torch.nn.parallel import DistributedDataParallel

            model = DistributedDataParallel(model)
        else:
            shard(model, units, cfg)
        opt = (torch.optim.Adam(model.parameters(), lr=cfg["lr"] / 10) if cfg["optimizer"] == "adam"
               else torch.optim.SGD(model.parameters(), lr=cfg["lr"]))
        gen = torch.Generator().manual_seed(1000 + rank)
        step_ns: list[int] = []
        with _context(cfg, model, out, rank) as prof:
            for _ in range(cfg["steps"]):
                t0 = time.perf_counter_ns()
                _micro_batches(cfg, model, gen)
                opt.step()
                opt.zero_grad(set_to_none=True)
                if prof is not None:
                    prof.step()
                step_ns.append(time.perf_counter_ns() - t0)
        write_step_times(cfg["times"], rank, step_ns)
        if cfg["times"]:
            _write_state(cfg["times"], rank, model, opt)
        if cfg["result"]:
            full = {k: v.full_tensor().detach().clone() for k, v in model.state_dict().items()}
            if rank == 0:
                torch.save(full, os.path.join(cfg["result"], "params.pt"))
            del full
        # FSDP2 keeps gloo work objects (with their tensors) alive through its state: released here, while the
        # interpreter is whole, not by gloo's threads during its finalization (which aborts the process: seen once
        # in CI, "terminate called without an active exception"; pytorch/pytorch#179291 describes the mechanism)
        del model, units, opt
        gc.collect()
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _write_state(folder: str, rank: int, model: Any, opt: Any) -> None:
    """The bytes of this rank's parameters (local shards) and optimizer state, from the tensors themselves."""
    import json

    import torch

    def local(t: Any) -> Any:
        return t.to_local() if hasattr(t, "to_local") else t

    params = sum(local(p).untyped_storage().nbytes() for p in model.parameters())
    state = sum(local(v).untyped_storage().nbytes() for st in opt.state.values() for v in st.values()
                if isinstance(v, torch.Tensor) and v.dim() > 0)
    # DDP's buckets: a copy of the gradients unless gradient_as_bucket_view (torch's own list of them)
    reducer = getattr(model, "reducer", None)
    buckets = 0 if reducer is None or getattr(model, "gradient_as_bucket_view", False) else sum(
        b.buffer().untyped_storage().nbytes() for b in reducer._get_zeros_like_grad_buckets())
    with open(os.path.join(folder, f"state{rank}.json"), "w") as f:
        json.dump({"params_bytes": params, "optimizer_bytes": state, "buckets_bytes": buckets}, f)


def launch(out: str | Path, nproc: int = 2, **cfg: Any) -> None:
    spawn(train_worker, out, nproc, cfg)


if __name__ == "__main__":  # python -m commprof.workloads.fsdpdemo RANK WORLD MASTER PORT OUT CFG_JSON
    sys.exit(worker_cli(train_worker, sys.argv[1:]))
