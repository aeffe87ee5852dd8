"""``commprof.trace()``: drive torch.profiler on a schedule around a training loop and write, per rank,
``rank{R}.pt.trace.json.gz`` (the Kineto trace as torch.profiler exports it) and ``rank{R}.commprof.json``
(the sidecar).

Guarantees: training computes the same values with and without commprof; commprof adds no collective
(so a dead rank cannot hang the others through it); every file is written atomically (complete or
absent); a folder that cannot be written costs a warning, never the training job; an exception in the
user's code is re-raised unchanged after the profiler has been stopped.
"""

from __future__ import annotations

import gzip
import os
import platform
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Literal

import orjson
import torch
import torch.distributed as dist
from torch.profiler import ProfilerAction, ProfilerActivity, profile, schedule

from ..atomic import write_bytes
from ..formats import files
from ..formats import sidecar as F
from ..warn import warn
from . import environment, fsdp, hostload, probe
from .cycle import device_stopped, release, stopped_text
from .ddp import DDPRecorder
from .inputs import InputCounter
from .modules import ModuleRecorder
from .options import TraceOptions, compiled_inner, signature_of

_session_counter = 0


def _rank_world() -> tuple[int, int, str | None]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), str(dist.get_backend())
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), None


def _agree_run_id(counter: int) -> str:
    """One id for every rank of this trace session, without a collective.

    Each rank proposes an id and the store keeps the first (``compare_set`` never blocks).
    """
    candidate = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
    if dist.is_available() and dist.is_initialized():
        try:
            from torch.distributed import distributed_c10d as c10d

            store = c10d._get_default_store()
            got = store.compare_set(f"commprof/run_id/{counter}", "", candidate)
            return got.decode() if isinstance(got, bytes) else str(got)
        except Exception:
            pass
    elastic = os.environ.get("TORCHELASTIC_RUN_ID")
    if elastic and elastic != "none":
        return f"{elastic}-{counter}"
    return candidate


class TraceSession:
    """The object ``commprof.trace()`` returns; call ``step()`` once per training step."""

    def __init__(self, options: TraceOptions) -> None:
        self.options = options
        self.out_dir = Path(options.out_dir)
        self.model = compiled_inner(options.model)
        self._sched_args = options.schedule()
        self._schedule = schedule(**self._sched_args)
        self._prof_kwargs: dict[str, Any] = dict(record_shapes=options.record_shapes,
                                                 profile_memory=options.profile_memory, with_stack=options.with_stack)
        self._comm_hook, self._comm_state = options.comm_hook, options.comm_state
        self._probe = options.probe
        self._fsdp = False
        self.rates: dict[str, Any] = {}
        activities = options.activities
        if activities is None:
            activities = [ProfilerActivity.CPU]
            if torch.cuda.is_available():
                activities.append(ProfilerActivity.CUDA)
        self.activities = list(activities)
        self.rank, self.world_size, self.backend = _rank_world()
        self.run_id = ""
        self.step_num = 0
        self.warnings: list[str] = []
        self.recorder: DDPRecorder | None = None
        self._inputs: InputCounter | None = None
        self.module_recorder: ModuleRecorder | None = \
            ModuleRecorder(options.modules) if options.modules is not None else None
        self._prof: profile | None = None
        self._writable = True
        self._warned_write = False
        self._step_times: list[dict[str, Any]] = []
        self._step_start = 0
        self._exports = 0
        self._export_times: list[list[int]] = []  # [start, end] Unix ns of each trace export (it stalls the peers)
        # the host's CPU time around each step (other work on the node): CPU runs only; the loop thread's scheduler
        # account: every run
        self._host = hostload.HostSampler(on=ProfilerActivity.CUDA not in self.activities)
        self._host_at_start: hostload.Counters | None = None
        self._env = environment.performance_env()  # as the job was started (read once, not at the end)

    # -- paths ----------------------------------------------------------------------------------
    @property
    def trace_path(self) -> Path:
        return self.out_dir / files.trace_name(self.rank)

    @property
    def sidecar_path(self) -> Path:
        return self.out_dir / files.sidecar_name(self.rank)

    # -- context manager ------------------------------------------------------------------------
    def __enter__(self) -> TraceSession:
        global _session_counter
        self.run_id = _agree_run_id(_session_counter)
        _session_counter += 1
        self._prepare_folder()
        if self.model is not None:
            self._install_recorder()
        # each cycle's trace is written in place of the last one's (torch exports the cycle it just stopped)
        self._prof = profile(activities=self.activities, schedule=self._schedule, on_trace_ready=self._on_trace_ready,
                             **self._prof_kwargs)
        self._prof.__enter__()
        if self.model is not None:  # once the profiler runs (its failure to start leaves no hook behind)
            self._inputs = InputCounter(self.options.model)  # the module the loop calls (a compiled one's wrapper)
        self._set_recording(0)
        self._host_at_start = self._host.sample()
        self._step_start = time.time_ns()
        return self

    def __exit__(self, exc_type, exc, tb) -> Literal[False]:
        # the loop's last prof.step() closed the last full step; what follows it is not a step
        if self.recorder is not None:
            self.recorder.end_step()
        if self.module_recorder is not None:
            self.module_recorder.active = False
            self.module_recorder.remove()
        if self._inputs is not None:
            self._inputs.remove()
        try:
            if self._prof is not None:
                self._prof.__exit__(None, None, None)  # exports a partly recorded cycle too
        except Exception as e:
            self._warn(f"stopping the profiler failed ({type(e).__name__}: {e})")
        finally:
            self._host.close()
            if self.recorder is not None:
                self.recorder.active = False
                self.recorder.set_grad_hooks(False)
            if exc_type is None:
                self._check_loop()
            self._write_sidecar()
        return False  # never swallow the user's exception

    def _check_loop(self) -> None:
        """The capture mistakes that leave a trace without steps, or fewer than the schedule asked for, named at
        exit (the report shows how many steps it analyzed)."""
        if self.step_num == 0:
            self._warn("no step was recorded: call prof.step() once per training step (without it the profiler "
                       "never leaves its first wait step, and nothing is traced)", stacklevel=4)  # the user's `with`
            return
        a = self._sched_args
        cycle = a["skip_first"] + a["wait"] + a["warmup"] + a["active"]
        if self.step_num < cycle:
            recorded = [n for n in range(self.step_num)
                        if self._schedule(n) in (ProfilerAction.RECORD, ProfilerAction.RECORD_AND_SAVE)]
            which = f"step {recorded[0]}" if len(recorded) == 1 else f"steps {recorded[0]}-{recorded[-1]}" \
                if recorded else ""
            held = f"the trace holds {len(recorded)} profiled step(s) ({which})" if recorded else "nothing was profiled"
            self._warn(f"the loop ran {self.step_num} step(s), fewer than the schedule's skip_first + wait + warmup + "
                       f"active = {cycle}: {held}; run more steps or shorten the schedule", stacklevel=4)

    def step(self) -> None:
        """Mark the end of a training step (call it once per iteration, like ``profiler.step()``)."""
        # one reading of the host's counters per boundary, inside the step it ends (never in the span torch.profiler
        # opens after the loop's last step); the next step's counters start from it, or from a second reading after
        # a trace export (the export's work is the profiler's, not the next step's)
        host = self._host.sample()
        self._close_step(time.time_ns(), host)
        self.step_num += 1
        exports = len(self._export_times)
        if self._prof is not None:
            self._prof.step()  # may export the trace: profiler cost, not the next step's
        self._set_recording(self.step_num)
        self._host_at_start = host if len(self._export_times) == exports else self._host.sample()
        self._step_start = time.time_ns()

    # -- internals ------------------------------------------------------------------------------
    def _profiled(self, step: int) -> bool:
        return self._schedule(step) != ProfilerAction.NONE

    def _set_recording(self, step: int) -> None:
        """Hooks exist only while the profiler records: outside the window training runs as without them
        (the DDP comm hook cannot be removed; it then only forwards)."""
        recording = self._schedule(step) in (ProfilerAction.RECORD, ProfilerAction.RECORD_AND_SAVE)
        if self.recorder is not None and not self.recorder.failed:
            self.recorder.active = recording
            self.recorder.set_grad_hooks(recording)
        if self.module_recorder is not None:
            self.module_recorder.active = recording
            if recording:
                self.module_recorder.install()
            else:
                self.module_recorder.remove()

    def _close_step(self, now: int, end: hostload.Counters | None) -> None:
        row = {F.S_STEP: self.step_num, F.S_START: self._step_start, F.S_END: now,
               F.S_PROFILED: self._profiled(self.step_num)}
        row.update(hostload.step_fields(self._host_at_start, end))
        if (elems := self._inputs.take() if self._inputs is not None else None) is not None:
            row[F.S_INPUT_ELEMS] = elems
        self._step_times.append(row)
        if self.recorder is not None:
            self.recorder.end_step()
        if self.module_recorder is not None:
            self.module_recorder.end_step()

    def _prepare_folder(self) -> None:
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.out_dir, prefix=".commprof-probe-"):
                pass
        except OSError as e:
            self._writable = False
            self._warn(f"the output folder {self.out_dir} cannot be written ({e.strerror or e}); "
                       "training goes on without traces")
            return
        self._keep_previous_run()

    def _keep_previous_run(self) -> None:
        """Files of an earlier run for this rank are moved aside, never overwritten."""
        old = self.sidecar_path
        if not old.exists() and not self.trace_path.exists():
            return
        prev_id = "unknown"
        try:
            prev_id = str(orjson.loads(old.read_bytes()).get(F.RUN_ID, "unknown"))
        except Exception:
            pass
        safe = "".join(ch for ch in prev_id if ch.isalnum() or ch in "-_")[:64] or "unknown"
        dest = self.out_dir / f"previous-{safe}"
        try:
            dest.mkdir(exist_ok=True)
            for p in (self.trace_path, self.sidecar_path):
                if p.exists():
                    os.replace(p, dest / p.name)
            self._warn(f"files of an earlier run ({prev_id}) moved to {dest}")
        except OSError as e:
            self._warn(f"could not move the earlier run's files aside ({e}); they will be replaced")

    def _install_recorder(self) -> None:
        from torch.nn.parallel import DistributedDataParallel

        if fsdp.is_fsdp2(self.model):
            self._fsdp = True  # its settings are read when the sidecar is written; times come from the trace
            return
        if not isinstance(self.model, DistributedDataParallel):
            self._warn(f"model is a {type(self.model).__name__}, not DistributedDataParallel: buckets are not "
                       "recorded (the trace alone is analyzed)")
            return
        rec = DDPRecorder(self.model, self._comm_hook, self._comm_state)
        problem = rec.install()
        if problem:
            self._warn(problem)
            return
        self.recorder = rec
        if self._probe:
            try:
                self.rates = probe.measure(self.model)
            except Exception as e:  # the probe must never break training
                self._warn(f"the rate probe failed ({type(e).__name__}: {e}); the advisor will not advise PowerSGD")

    def _warn(self, text: str, stacklevel: int = 3) -> None:
        self.warnings.append(text)
        warn(f"commprof (rank {getattr(self, 'rank', '?')}): {text}", stacklevel=stacklevel)

    def _on_trace_ready(self, prof: profile) -> None:
        """Called by torch.profiler at the end of each active cycle.  Never raises."""
        if not self._writable or self._keep_previous_cycle(prof):
            release(prof)
            return
        t_export = time.time_ns()
        tmp_dir = None
        try:
            tmp_dir = tempfile.mkdtemp(prefix=".commprof-", dir=self.out_dir)
            raw = os.path.join(tmp_dir, "trace.json")
            prof.export_chrome_trace(raw)
            gz = os.path.join(tmp_dir, "trace.json.gz")
            with open(raw, "rb") as src, open(gz, "wb") as dst_raw:
                with gzip.GzipFile(fileobj=dst_raw, mode="wb", compresslevel=6, mtime=0) as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                dst_raw.flush()
                os.fsync(dst_raw.fileno())
            os.replace(gz, self.trace_path)
            release(prof)  # inside the export's time: peers may wait for it
            self._exports += 1
            self._export_times.append([t_export, time.time_ns()])
            self._write_sidecar()
        except Exception as e:
            self._write_failed(e)
        finally:
            if tmp_dir:
                shutil.rmtree(tmp_dir, ignore_errors=True)
            release(prof)

    def _keep_previous_cycle(self, prof: profile) -> bool:
        """A cycle whose device collection stopped early is named; it replaces no earlier cycle's trace."""
        if not device_stopped(prof):
            return False
        self._warn(stopped_text(prof.step_num, kept=self._exports > 0))
        return self._exports > 0

    def _write_failed(self, e: BaseException) -> None:
        if not self._warned_write:
            self._warned_write = True
            self._warn(f"could not write the trace to {self.out_dir} ({type(e).__name__}: {e}); "
                       "training goes on")

    def sidecar(self) -> dict[str, Any]:
        rec = self.recorder
        device = "cpu"
        if torch.cuda.is_available() and ProfilerActivity.CUDA in self.activities:
            idx = torch.cuda.current_device()
            device = f"cuda:{idx} ({torch.cuda.get_device_name(idx)})"
        return {
            F.SCHEMA_KEY: F.SCHEMA,
            F.RUN_ID: self.run_id,
            F.RANK: self.rank,
            F.WORLD_SIZE: self.world_size,
            F.BACKEND: self.backend,
            F.VERSIONS: environment.versions(),
            F.DEVICE: device,
            F.HOST: platform.node(),
            F.NET_NS: hostload.net_namespace(),
            F.CPUS: list(self._host.cpus) if self._host.ok and self._host.cpus else None,
            "pid": os.getpid(),
            "clock": "unix_ns",
            "schedule": self._sched_args,
            F.DDP: rec.settings() if rec else None,
            F.LAYOUTS: rec.layouts_json() if rec else [],
            F.BUCKETS: rec.events if rec else [],
            F.PARAM_READY: {str(k): v for k, v in rec.param_ready.items()} if rec else {},
            F.STEPS: self._step_times,
            F.EXPORTS: self._export_times,
            F.MODULE_ORDER: [n for n, _m in self.module_recorder.modules] if self.module_recorder else [],
            F.MODULES: [c for c in self.module_recorder.calls if F.M_FWD_END in c] if self.module_recorder else [],
            F.WARNINGS: self.warnings,
            F.RATES: self.rates or None,
            F.FSDP: self._fsdp_settings(),
            F.ENV: self._env,
        }

    def _fsdp_settings(self) -> dict[str, Any] | None:
        if not self._fsdp:
            return None
        try:
            return fsdp.settings(self.model)
        except Exception as e:  # private attributes of FSDP2: never fail the run over them
            self._fsdp = False
            self._warn(f"FSDP2's settings could not be read ({type(e).__name__}: {e}); the trace alone is analyzed")
            return None

    def _write_sidecar(self) -> None:
        if not self._writable:
            return
        try:
            write_bytes(self.sidecar_path, orjson.dumps(self.sidecar()))
        except Exception as e:
            self._write_failed(e)


@signature_of(TraceOptions)
def trace(*args: Any, **kwargs: Any) -> TraceSession:
    """Trace a training loop::

        with commprof.trace("traces", model=ddp_model) as prof:
            for batch in loader:
                ...  # forward, backward, optimizer step
                prof.step()

    The options are ``TraceOptions``'s fields (``commprof.capture.options``, each with its docstring)."""
    return TraceSession(TraceOptions(*args, **kwargs))

