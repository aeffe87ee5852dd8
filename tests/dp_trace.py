"""A Kineto trace of ``nn.DataParallel`` on 4 GPUs, built event for event like torch.profiler writes one.

This machine has no GPU, so the trace is built, not recorded.  Its shape follows what DataParallel does
(torch/nn/parallel/data_parallel.py, _functions.py, torch/cuda/comm.py) and how Kineto writes it:

- each autograd function (``Scatter``, ``Broadcast``, ``Gather``, ``ReduceAddCoalesced``) is a ``cpu_op`` named
  after its class, with ``Input Dims`` / ``Input type`` of its arguments (checked on CPU with the real profiler
  in tests/e2e/test_dataparallel.py); backward nodes are ``autograd::engine::evaluate_function: GatherBackward`` /
  ``BroadcastBackward`` around ``GatherBackward`` / ``BroadcastBackward``;
- broadcast and reduce go through NCCL in one process (torch::cuda::broadcast_coalesced, comm.reduce_add):
  ``ncclDevKernel_Broadcast_RING_LL`` / ``ncclDevKernel_Reduce_Sum_f32_RING_LL`` kernels on every device,
  launched by ``cuLaunchKernelEx`` (``cuda_driver``) — the names NCCL >= 2.19 gives its kernels;
- scatter and gather copy between devices: ``gpu_memcpy`` events named ``Memcpy PtoP (Device -> Device)`` with
  Kineto's peer-copy args (fromDevice, inDevice, toDevice, ..., bytes), launched by ``cudaMemcpyAsync``;
- replicas run forward in one Python thread per device; the loss and the optimizer run on device 0 only.

The GPU check (scripts/gpu_check.sh) records the real thing where a machine has two or more GPUs.
"""

from __future__ import annotations

import json
from pathlib import Path

N_DEV = 4
LAYERS = [(2048, 2048)] * 3 + [(1000, 2048)]  # Linear weights (out, in)
BATCH = 256
PARAM_BYTES = sum(4 * (o * i + o) for o, i in LAYERS)
STEP_US = 40_000


class _Builder:
    def __init__(self) -> None:
        self.ev: list[dict] = []
        self.corr = 1000
        self.ext = 1

    def cpu(self, name: str, tid: int, ts: float, dur: float, dims=None, types=None, cat: str = "cpu_op") -> None:
        args: dict = {"External id": self.ext}
        self.ext += 1
        if dims is not None:
            args["Input Dims"] = dims
            args["Input type"] = types
        self.ev.append({"ph": "X", "cat": cat, "name": name, "pid": 1, "tid": tid, "ts": ts, "dur": dur,
                        "args": args})

    def _launch(self, name: str, cat: str, tid: int, ts: float) -> int:
        self.corr += 1
        self.ev.append({"ph": "X", "cat": cat, "name": name, "pid": 1, "tid": tid, "ts": ts, "dur": 6.0,
                        "args": {"cbid": 211, "correlation": self.corr}})
        return self.corr

    def kernel(self, name: str, dev: int, tid: int, launch_ts: float, ts: float, dur: float,
               driver: bool = False) -> None:
        c = self._launch("cuLaunchKernelEx" if driver else "cudaLaunchKernel",
                         "cuda_driver" if driver else "cuda_runtime", tid, launch_ts)
        self.ev.append({"ph": "X", "cat": "kernel", "name": name, "pid": dev, "tid": 7 + dev, "ts": ts, "dur": dur,
                        "args": {"queued": 0, "device": dev, "context": 1, "stream": 7 + dev, "correlation": c,
                                 "registers per thread": 96, "grid": [32, 1, 1], "block": [512, 1, 1]}})

    def p2p(self, src: int, dst: int, tid: int, launch_ts: float, ts: float, dur: float, nbytes: int) -> None:
        c = self._launch("cudaMemcpyAsync", "cuda_runtime", tid, launch_ts)
        self.ev.append({"ph": "X", "cat": "gpu_memcpy", "name": "Memcpy PtoP (Device -> Device)", "pid": dst,
                        "tid": 7 + dst, "ts": ts, "dur": dur,
                        "args": {"fromDevice": src, "inDevice": dst, "toDevice": dst, "fromContext": 1,
                                 "inContext": 1, "toContext": 1, "stream": 7 + dst, "correlation": c,
                                 "bytes": nbytes, "memory bandwidth (GB/s)": nbytes / (dur * 1e3)}})


def _param_dims() -> tuple[list, list]:
    dims, types = [], []
    for o, i in LAYERS:
        dims += [[o, i], [o]]
        types += ["float", "float"]
    return dims, types


def build(steps: int = 3, t0: float = 1_700_000_000_000_000.0) -> dict:
    b = _Builder()
    main, autograd = 100, 300
    pdims, ptypes = _param_dims()
    for k in range(steps):
        T = t0 + k * STEP_US
        b.cpu(f"ProfilerStep#{k + 1}", main, T, STEP_US - 5, cat="user_annotation")
        # Scatter the batch (on device 0) to the replicas: peer copies into devices 1..3
        b.cpu("Scatter", main, T + 100, 500, [[], [], [], [BATCH, 2048]], ["GenericList", "", "Scalar", "float"])
        for d in range(1, N_DEV):
            b.cpu("aten::to", main, T + 150 + 100 * d, 80, [[BATCH // N_DEV, 2048], [], [], [], []],
                  ["float", "Scalar", "Scalar", "Scalar", "Scalar"])
            b.p2p(0, d, main, T + 160 + 100 * d, T + 200 + 100 * d, 60, BATCH // N_DEV * 2048 * 4)
        # replicate: Broadcast the parameters from device 0 (NCCL broadcast on every device)
        b.cpu("Broadcast", main, T + 700, 3000, [[]] + pdims, ["GenericList"] + ptypes)
        b.cpu("aten::cat", main, T + 720, 60, [[[o, i] for o, i in LAYERS]], ["TensorList"])
        for d in range(N_DEV):
            b.kernel("ncclDevKernel_Broadcast_RING_LL(ncclDevKernelArgsStorage<4096ul>)", d, main, T + 790 + d,
                     T + 800, 2700, driver=True)
        # forward: one Python thread per replica
        for d in range(N_DEV):
            b.cpu("aten::addmm", 200 + d, T + 3800, 40, [[2048], [BATCH // N_DEV, 2048], [2048, 2048], [], []],
                  ["float", "float", "float", "Scalar", "Scalar"])
            b.kernel("sm90_xmma_gemm_f32f32_tf32f32_f32_tn_n_tilesize128x128x32", d, 200 + d, T + 3810,
                     T + 4000, 8000)
        # Gather the outputs onto device 0 (peer copies into device 0), then the loss on device 0
        b.cpu("Gather", main, T + 12500, 500, [[], [], [BATCH // N_DEV, 1000]] + [[BATCH // N_DEV, 1000]] * 3,
              ["Scalar", "Scalar", "float", "float", "float", "float"])
        for d in range(1, N_DEV):
            b.p2p(d, 0, main, T + 12550 + 100 * d, T + 12600 + 100 * d, 50, BATCH // N_DEV * 1000 * 4)
        b.kernel("void at::native::cunn_SoftMaxForward<4, float>", 0, main, T + 13050, T + 13100, 400)
        # backward: GatherBackward scatters the output gradient again
        b.cpu("autograd::engine::evaluate_function: GatherBackward", autograd, T + 13600, 700)
        b.cpu("GatherBackward", autograd, T + 13610, 680, [[BATCH, 1000]], ["float"])
        b.cpu("Scatter", autograd, T + 13650, 600, [[], [], [], [BATCH, 1000]], ["GenericList", "", "Scalar", "float"])
        for d in range(1, N_DEV):
            b.p2p(0, d, autograd, T + 13700 + 100 * d, T + 13750 + 100 * d, 40, BATCH // N_DEV * 1000 * 4)
        for d in range(N_DEV):
            b.kernel("sm90_xmma_gemm_f32f32_tf32f32_f32_nn_n_tilesize128x128x32", d, autograd + 1 + d,
                     T + 14400, T + 14500, 15500)
        # BroadcastBackward -> ReduceAddCoalesced: every replica's gradients summed onto device 0
        b.cpu("autograd::engine::evaluate_function: BroadcastBackward", autograd, T + 30050, 4500)
        b.cpu("BroadcastBackward", autograd, T + 30060, 4480, [[p for p in pdims]], ["TensorList"])
        b.cpu("ReduceAddCoalesced", autograd, T + 30100, 4400, [[], []] + pdims * N_DEV,
              ["Scalar", "Scalar"] + ptypes * N_DEV)
        for d in range(N_DEV):
            b.kernel("ncclDevKernel_Reduce_Sum_f32_RING_LL(ncclDevKernelArgsStorage<4096ul>)", d, autograd,
                     T + 30200 + d, T + 30300, 4000, driver=True)
        # the optimizer on device 0 only
        b.cpu("Optimizer.step#SGD.step", main, T + 34900, 3100)
        b.kernel("void at::native::multi_tensor_apply_kernel<float>", 0, main, T + 34950, T + 35000, 3000)
    props = [{"id": d, "name": "NVIDIA H100 80GB HBM3", "totalGlobalMem": 85_000_000_000} for d in range(N_DEV)]
    return {"schemaVersion": 1, "deviceProperties": props, "traceEvents": b.ev, "traceName": "dp4",
            "displayTimeUnit": "ms", "baseTimeNanoseconds": 0}


def write(path: Path, steps: int = 3) -> Path:
    path.write_text(json.dumps(build(steps)))
    return path
