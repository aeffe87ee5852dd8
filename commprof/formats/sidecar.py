"""The sidecar's schema (``rank{R}.commprof.json``), shared by the writer (``commprof.capture``) and the reader
(``commprof.reader.sidecar``).

A JSON object; times are Unix nanoseconds (the reader moves them onto the trace's clock)::

    schema, run_id, rank, world_size, backend, versions{}, device, host, net_ns, cpus[], pid, clock, schedule{},
    ddp: {bucket_cap_mb, bucket_bytes_cap, first_bucket_bytes, gradient_as_bucket_view, static_graph,
          find_unused_parameters, broadcast_buffers, hook, hook_matrix_rank, hook_registered, recording,
          process_group_size, process_group_ranks?, params: [[name, numel, dtype, shape], ...]} | null,
    layouts: [{id, buckets: [[[param, numel], ...], ...]}],
    buckets: [{step, index, numel, bytes, dtype, is_last, layout, ready_unix_ns, hook_unix_ns, launch_unix_ns,
               observed}],
    param_ready: {step: {param: unix_ns}},
    steps: [{step, start_unix_ns, end_unix_ns, profiled, host_busy_ns?, cpu_ns?, sched_run_ns?, sched_wait_ns?,
             input_elems?}],
    exports: [[start_unix_ns, end_unix_ns], ...],
    module_order: [name], modules: [{step, name, fwd_start, fwd_end, bwd_start, bwd_end, out_bytes}],
    fsdp: {units: [{name, params, numel, unsharded_bytes, sharded_bytes, dtypes, reshard_after_forward,
                    forward_prefetch: [unit], backward_prefetch: [unit]}],
           mixed_precision: {param_dtype, reduce_dtype, output_dtype},
           mesh: {shape, dim_names, hsdp, shard_ranks?, replicate_ranks?}} | absent
    rates: {device, buffer_bytes, pass_bps, fresh_bps, products: [[kind, n, m, r, ns], ...],
            orthogonalize: [[n, r, ns], ...], wall_ms} | absent   (``commprof.capture.probe``)
    env: {name: value} | absent   (the variables that change how fast a job runs: ``commprof.capture.environment``)
    warnings: [str]

Versioned: a reader accepts older files through defaults and refuses newer ones.
"""

from __future__ import annotations

SCHEMA = "commprof.sidecar/1"
SCHEMA_PREFIX = "commprof.sidecar/"
VERSION = 1
SCHEMA_KEY = "schema"
MAX_BYTES = 512 * 1024**2

# top level
RUN_ID, RANK, WORLD_SIZE, BACKEND, VERSIONS, DEVICE = "run_id", "rank", "world_size", "backend", "versions", "device"
DDP, LAYOUTS, BUCKETS, PARAM_READY, STEPS = "ddp", "layouts", "buckets", "param_ready", "steps"
EXPORTS = "exports"  # when this rank exported its trace: its peers' steps then wait for it
MODULE_ORDER, MODULES, WARNINGS, RATES = "module_order", "modules", "warnings", "rates"
# the words of the warning a rank writes where a profiler cycle's device collection stopped early and it kept an
# earlier cycle's trace (``capture.cycle``): its trace then holds other steps than its peers' (``engine.together``)
KEPT_EARLIER_CYCLE = "kept the previous profiler cycle's trace"
ENV = "env"  # the environment variables that change how fast a job runs (absent in older sidecars)

# ddp settings
BUCKET_CAP_MB, BUCKET_BYTES_CAP, FIRST_BUCKET_BYTES = "bucket_cap_mb", "bucket_bytes_cap", "first_bucket_bytes"
GRADIENT_AS_BUCKET_VIEW, STATIC_GRAPH = "gradient_as_bucket_view", "static_graph"
FIND_UNUSED_PARAMETERS, BROADCAST_BUFFERS = "find_unused_parameters", "broadcast_buffers"
HOOK, HOOK_MATRIX_RANK, HOOK_REGISTERED, RECORDING = "hook", "hook_matrix_rank", "hook_registered", "recording"
PROCESS_GROUP_SIZE, PARAMS = "process_group_size", "params"
PROCESS_GROUP_RANKS = "process_group_ranks"  # its members' global ranks (null: unknown; absent in older sidecars)

# a layout; a bucket of a step
LAYOUT_ID, LAYOUT_BUCKETS = "id", "buckets"
B_STEP, B_INDEX, B_NUMEL, B_BYTES, B_DTYPE, B_IS_LAST = "step", "index", "numel", "bytes", "dtype", "is_last"
B_LAYOUT, B_OBSERVED = "layout", "observed"
B_READY, B_HOOK, B_LAUNCH = "ready_unix_ns", "hook_unix_ns", "launch_unix_ns"

# a step's wall time; the busy time of the CPUs the rank may run on and the rank's own CPU time (its threads and
# child processes) over the step; the time the loop's thread ran and waited for a CPU (the scheduler's account)
# (``commprof.capture.hostload``; absent off Linux, without the kernel's scheduler account and in older sidecars;
# GPU runs record the scheduler account alone)
S_STEP, S_START, S_END, S_PROFILED = "step", "start_unix_ns", "end_unix_ns", "profiled"
S_HOST_BUSY_NS, S_CPU_NS = "host_busy_ns", "cpu_ns"
S_SCHED_RUN_NS, S_SCHED_WAIT_NS = "sched_run_ns", "sched_wait_ns"
# the elements of the tensors the model's calls received in the step (``commprof.capture.inputs``; absent without
# model=, where no call was seen, and in older sidecars)
S_INPUT_ELEMS = "input_elems"
HOST, CPUS = "host", "cpus"  # the host's name; the CPUs this rank may run on (its affinity)
# the rank's network stack (Linux: "<boot id>/<inode of /proc/self/ns/net>"; absent elsewhere and in older
# sidecars): ranks of one stack reach each other through the kernel's loopback, never over a link
NET_NS = "net_ns"

# a module call
M_STEP, M_NAME, M_FWD_START, M_FWD_END = "step", "name", "fwd_start", "fwd_end"
M_BWD_START, M_BWD_END, M_OUT_BYTES = "bwd_start", "bwd_end", "out_bytes"

# the rate probe (kinds of product: "mq" P = M Q, "mtp" Q = M^T P, "pqt" M = P Q^T)
R_DEVICE, R_BUFFER_BYTES, R_PASS_BPS, R_FRESH_BPS = "device", "buffer_bytes", "pass_bps", "fresh_bps"
R_PRODUCTS, R_ORTHOGONALIZE, R_WALL_MS = "products", "orthogonalize", "wall_ms"

# FSDP2 (commprof.capture.fsdp)
FSDP, FSDP_UNITS, FSDP_MP, FSDP_MESH = "fsdp", "units", "mixed_precision", "mesh"
# global ranks; null where the mesh has no such group (replicate: HSDP only) or torch could not say; absent in older
# sidecars
MESH_SHARD_RANKS, MESH_REPLICATE_RANKS = "shard_ranks", "replicate_ranks"
U_NAME, U_PARAMS, U_NUMEL = "name", "params", "numel"
U_UNSHARDED_BYTES, U_SHARDED_BYTES, U_DTYPES = "unsharded_bytes", "sharded_bytes", "dtypes"
U_RESHARD, U_FWD_PREFETCH, U_BWD_PREFETCH = "reshard_after_forward", "forward_prefetch", "backward_prefetch"
