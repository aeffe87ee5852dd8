"""The monitor's files (``commprof.monitor``), shared by the writer (``commprof.capture.monitor``) and the reader
(``commprof.reader.monitor``).

``rank{R}.monitor.jsonl``: one JSON object per line, appended every ``every`` steps; each line is complete or
absent (one ``write`` of a whole line on a file opened for appending; a reader skips a torn last line)::

    {schema, rank, world_size, backend, host, pid, first_step, last_step,
     steps: [[step, start_unix_ns, end_unix_ns], ...],
     collectives: [{op, pg, count, bytes, issues: [[step, seq, offset_us], ...], durations_us: [...]}],
     fr_lost: int,      # Flight Recorder entries the ring buffer dropped before they were read
     env: {name: value},  # the variables that change how fast a job runs (commprof.capture.environment); absent
                          # in older files
     closed: true}        # only on the last line, written when the monitored block was left without an exception
                          # (its loop ended); absent in older files

``rank{R}.hang.json``: written by the watchdog when ``step()`` stalls past ``hang_timeout_s``, on SIGUSR1, or
when the training loop leaves with an exception::

    {schema, rank, world_size, backend, host, pid, reason, step, since_step_s, time_unix_ns,
     flight_recorder: {available, entries: [{seq, op, pg, input_sizes, input_dtypes, output_sizes,
                                              state, retired, created_unix_ns}], error},
     threads: [{name, ident, main, stack: [[file, line, function, code], ...]}],
     env: {name: value}}  # as in a rollup line (absent in older dumps)
"""

from __future__ import annotations

from typing import Any

MONITOR_SCHEMA = "commprof.monitor/1"
HANG_SCHEMA = "commprof.hang/1"
MONITOR_SUFFIX = ".monitor.jsonl"
HANG_SUFFIX = ".hang.json"
MAX_LINE_BYTES = 64 * 1024**2
MAX_HANG_BYTES = 256 * 1024**2

# both files
SCHEMA, RANK, WORLD_SIZE, BACKEND, HOST, PID = "schema", "rank", "world_size", "backend", "host", "pid"
ENV = "env"
# a rollup line
FIRST_STEP, LAST_STEP, STEPS, COLLECTIVES, FR_LOST = "first_step", "last_step", "steps", "collectives", "fr_lost"
CLOSED = "closed"
C_OP, C_PG, C_COUNT, C_BYTES, C_ISSUES, C_DURATIONS = "op", "pg", "count", "bytes", "issues", "durations_us"
# a hang dump
REASON, STEP, SINCE_STEP_S, TIME = "reason", "step", "since_step_s", "time_unix_ns"
FR, FR_AVAILABLE, FR_ENTRIES, FR_ERROR = "flight_recorder", "available", "entries", "error"
E_SEQ, E_OP, E_PG, E_IN_SIZES, E_IN_DTYPES = "seq", "op", "pg", "input_sizes", "input_dtypes"
E_OUT_SIZES, E_STATE, E_RETIRED, E_CREATED = "output_sizes", "state", "retired", "created_unix_ns"
THREADS, T_NAME, T_IDENT, T_MAIN, T_STACK = "threads", "name", "ident", "main", "stack"

# Flight Recorder dtype names -> bytes per element
FR_DTYPE_BYTES = {"Float": 4, "Double": 8, "Half": 2, "BFloat16": 2, "Long": 8, "Int": 4, "Short": 2, "Char": 1,
                  "Byte": 1, "Bool": 1, "Float8_e4m3fn": 1, "Float8_e5m2": 1, "ComplexFloat": 8, "ComplexDouble": 16}


def monitor_name(rank: int) -> str:
    return f"rank{rank}{MONITOR_SUFFIX}"


def hang_name(rank: int) -> str:
    return f"rank{rank}{HANG_SUFFIX}"


def _op(name: Any) -> str:
    """``gloo:all_reduce`` / ``nccl:all_reduce`` -> ``all_reduce``."""
    s = str(name or "")
    return s.split(":", 1)[1] if ":" in s else s


def convert_fr_entry(raw: dict[str, Any]) -> dict[str, Any]:
    """One Flight Recorder entry (JSON dump or NCCL pickle) in commprof's shape."""
    pg = raw.get("process_group")
    pg_name = str(pg[0]) if isinstance(pg, (list, tuple)) and pg else str(raw.get("pg_id", ""))
    return {E_SEQ: raw.get("collective_seq_id"), E_OP: _op(raw.get("profiling_name")), E_PG: pg_name,
            E_IN_SIZES: raw.get("input_sizes"), E_IN_DTYPES: raw.get("input_dtypes"),
            E_OUT_SIZES: raw.get("output_sizes"), E_STATE: raw.get("state"), E_RETIRED: raw.get("retired"),
            E_CREATED: raw.get("time_created_ns")}
