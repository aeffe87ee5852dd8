"""Writes the corpus of broken inputs in this folder (committed; rerun to regenerate):

    python tests/data/bad/make_corpus.py

Each case is a folder; ``expected.json`` says what ``python -m commprof report CASE`` must do: exit code,
and a text that the one stderr line (exit 2) or a summary.json warning (exit 0) must contain.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent


def tiny_trace(rank: int, world: int = 2, extra: list | None = None, *, steps: tuple[int, ...] = (2, 3),
               elems: int = 1000, **top: object) -> dict:
    """A small valid CPU/gloo trace: two steps, compute on the main thread, a transfer per step; ``top``: more keys
    of the document (``baseTimeNanoseconds``, ``host_name``), ``nccl_version`` goes into distributedInfo."""
    ev = [{"ph": "M", "name": "thread_name", "pid": 1, "tid": 9, "args": {"name": "pt_gloo_runloop"}}]
    for k, step in enumerate(steps):
        t = 1_000_000.0 + k * 10_000
        ev += [
            {"ph": "X", "cat": "user_annotation", "name": f"ProfilerStep#{step}", "pid": 1, "tid": 1, "ts": t,
             "dur": 9_000.0, "args": {}},
            {"ph": "X", "cat": "cpu_op", "name": "aten::mm", "pid": 1, "tid": 1, "ts": t + 100, "dur": 5_000.0,
             "args": {}},
            {"ph": "X", "cat": "cpu_op", "name": "c10d::allreduce_", "pid": 1, "tid": 1, "ts": t + 4_000,
             "dur": 50.0, "args": {"Input Dims": [[[elems]]], "Input type": ["TensorList"]}},
            {"ph": "X", "cat": "user_annotation", "name": "gloo:all_reduce", "pid": 1, "tid": 9, "ts": t + 4_010,
             "dur": 3_000.0, "args": {"Input Dims": [[elems]], "Input type": ["float"]}},
        ]
    di: dict = {"backend": "gloo", "rank": rank, "world_size": world}
    if "nccl_version" in top:
        di["nccl_version"] = top.pop("nccl_version")
    return {"schemaVersion": 1, "distributedInfo": di, "traceEvents": ev + (extra or []), **top}


def sidecar(rank: int, run_id: str = "run-a", schema: str = "commprof.sidecar/1", world: int = 2) -> dict:
    return {"schema": schema, "run_id": run_id, "rank": rank, "world_size": world, "backend": "gloo",
            "steps": [], "buckets": [], "layouts": []}


def gz(obj) -> bytes:
    return gzip.compress(json.dumps(obj).encode(), mtime=0)


CASES: dict[str, tuple[dict[str, bytes], dict]] = {}


def case(name: str, files: dict[str, bytes], exit_code: int, text: str, args: list[str] | None = None) -> None:
    CASES[name] = (files, {"exit": exit_code, "text": text, "args": args or []})


good0, good1 = gz(tiny_trace(0)), gz(tiny_trace(1))
case("truncated_gzip", {"rank0.pt.trace.json.gz": good0[: len(good0) // 2]}, 2, "truncated gzip")
case("corrupt_gzip", {"rank0.pt.trace.json.gz": good0[:10] + b"\x00" * 40 + good0[50:]}, 2, "corrupt gzip")
case("truncated_json", {"rank0.json": json.dumps(tiny_trace(0)).encode()[:-40]}, 2, "not valid JSON")
case("empty_file", {"rank0.json": b""}, 2, "empty file")
case("not_json", {"rank0.json": b"<html>this is not a trace</html>"}, 2, "not valid JSON")
case("top_level_string", {"rank0.json": b'"a string"'}, 2, "top level is a JSON str")
case("top_level_number_list", {"rank0.json": b"[1, 2, 3]"}, 2, "no usable trace events")
case("no_trace_events", {"rank0.json": b'{"schemaVersion": 1, "events": []}'}, 2, "no 'traceEvents'")
case("trace_events_not_list", {"rank0.json": b'{"traceEvents": {"a": 1}}'}, 2, "'traceEvents' is not a list")
case("empty_event_list", {"rank0.json": b'{"traceEvents": []}'}, 2, "no usable trace events")
case("events_lack_fields",
     {"rank0.json": json.dumps(tiny_trace(0, 1, [{"ph": "X", "name": "x"}, {"ph": "X", "ts": 5, "dur": 1},
                                                 {"ph": "X", "name": "y", "ts": "soon", "dur": 1}])).encode()},
     0, "skipped 2 events (no valid ts/dur)")
case("negative_and_huge_values",
     {"rank0.json": json.dumps(tiny_trace(0, 1, [{"ph": "X", "name": "neg", "ts": 5.0, "dur": -3.0},
                                                 {"ph": "X", "name": "huge", "ts": 1e300, "dur": 1.0}])).encode()},
     0, "skipped 2 events (negative or out-of-range ts/dur)")
case("nan_literal", {"rank0.json": json.dumps(tiny_trace(0, 1), allow_nan=True)
                     .replace('"dur": 9000.0', '"dur": NaN', 1).replace('"dur": 5000.0', '"dur": Infinity', 1)
                     .replace('"ts": 1010100.0', '"ts": -Infinity', 1).encode()},
     0, "3 non-finite numbers (NaN, Infinity) read as null")
case("deep_nesting", {"rank0.json.gz": gzip.compress(json.dumps(tiny_trace(0, 1)).replace(
    '"args": {}', '"args": {"x": ' + "[" * 200_000 + "]" * 200_000 + "}", 1).encode(), mtime=0)}, 2,
     "more than 1024 deep")
case("one_rank_of_two", {"rank0.json": json.dumps(tiny_trace(0, 2)).encode()}, 0,
     "1 of 2 ranks present; missing ranks: 1")
case("message_size_beyond_any", {"rank0.json": json.dumps(tiny_trace(0, 1, [
    {"ph": "X", "cat": "cpu_op", "name": "record_param_comms", "pid": 1, "tid": 1, "ts": 1_004_001.0, "dur": 10.0,
     "args": {"Collective name": "allreduce", "In msg nelems": 2**65, "Out msg nelems": 2**65, "dtype": "Float"}}])
                                                  ).encode()}, 0, "claim sizes beyond 281,474,976,710,656 bytes")
case("integer_beyond_64_bits",
     {"rank0.json": json.dumps(tiny_trace(0, 1)).replace('"ts": 1000100.0', '"ts": 123456789012345678901234567890',
                                                         1).encode()},
     0, "skipped 1 events (negative or out-of-range ts/dur)")
case("invalid_utf8", {"rank0.json": json.dumps(tiny_trace(0, 1)).replace("aten::mm", "aten::mm\udcff")
                      .encode("utf-8", "surrogateescape")}, 0, "invalid UTF-8")
case("broken_rank_beside_healthy", {"rank0.pt.trace.json.gz": good0,
                                    "rank1.pt.trace.json.gz": good1[: len(good1) - 30]}, 0, "skipped")
case("two_files_claim_one_rank", {"a_rank0.json": json.dumps(tiny_trace(0)).encode(),
                                  "b_rank1.json": json.dumps(tiny_trace(0)).encode()}, 2, "claims rank 0")
case("world_sizes_mixed", {"rank0.json": json.dumps(tiny_trace(0, 2)).encode(),
                           "rank1.json": json.dumps(tiny_trace(1, 4)).encode()}, 2, "world size")
case("runs_mixed", {"rank0.pt.trace.json.gz": good0, "rank1.pt.trace.json.gz": good1,
                    "rank0.commprof.json": json.dumps(sidecar(0, "run-a")).encode(),
                    "rank1.commprof.json": json.dumps(sidecar(1, "run-b")).encode()}, 2, "different runs")
case("missing_ranks", {"rank0.json": json.dumps(tiny_trace(0, 4)).encode(),
                       "rank1.json": json.dumps(tiny_trace(1, 4)).encode()}, 0, "missing ranks: 2, 3")
case("sidecars_without_traces", {"rank0.commprof.json": json.dumps(sidecar(0)).encode()}, 2, "no trace files")
case("trace_without_sidecar_beside_one_with",
     {"rank0.pt.trace.json.gz": good0, "rank1.pt.trace.json.gz": good1,
      "rank0.commprof.json": json.dumps(sidecar(0)).encode()}, 0, "have no commprof sidecar")
case("sidecar_garbage", {"rank0.pt.trace.json.gz": good0, "rank1.pt.trace.json.gz": good1,
                         "rank0.commprof.json": b"\x00garbage"}, 0, "sidecar is not valid JSON")
case("sidecar_newer_schema", {"rank0.pt.trace.json.gz": good0, "rank1.pt.trace.json.gz": good1,
                              "rank0.commprof.json": json.dumps(sidecar(0, schema="commprof.sidecar/99")).encode()},
     0, "newer than this commprof understands")
case("sidecar_not_a_sidecar", {"rank0.pt.trace.json.gz": good0, "rank1.pt.trace.json.gz": good1,
                               "rank0.commprof.json": b'{"hello": "world"}'}, 0, "not a commprof sidecar")
case("empty_folder", {".gitkeep": b""}, 2, "no trace files")
case("gzip_bomb", {"rank0.pt.trace.json.gz": gzip.compress(b'{"traceEvents": [' + b" " * 64_000_000 + b"]}",
                                                           compresslevel=9, mtime=0)}, 2, "decompresses to more",
     ["--max-bytes", "10000000"])
case("hostile_names", {"rank0.json": json.dumps(tiny_trace(0, 1, [
    {"ph": "X", "cat": "user_annotation", "name": "gloo:all_reduce", "pid": 1, "tid": 9, "ts": 1_000_500.0,
     "dur": 10.0, "args": {"Input Dims": [[8]], "Input type": ["\u001b[31m<script>alert(1)</script>"]}}])).encode()},
     0, "")


# sets of ranks that cannot have run together, profiler cycles, what is not a PyTorch trace (issue 24)
UNIX = 1_700_000_000_000_000_000  # a baseTimeNanoseconds: the traces' times are Unix times


def js(obj) -> bytes:
    return json.dumps(obj).encode()


case("cycles_crossed", {"rank0.json": js(tiny_trace(0, steps=(2, 3, 4))),
                        "rank1.json": js(tiny_trace(1, steps=(7, 8, 9)))},
     2, "rank 0 (rank0.json) has steps 2-4, rank 1 (rank1.json) steps 7-9: different profiler cycles")
case("cycles_crossed_per_rank", {"rank0.json": js(tiny_trace(0, steps=(2, 3, 4))),
                                 "rank1.json": js(tiny_trace(1, steps=(7, 8, 9)))},
     0, "per-rank figures only, no cross-rank figure: rank 0 (rank0.json) has steps 2-4", ["--per-rank"])
case("runs_a_minute_apart", {"rank0.json": js(tiny_trace(0, baseTimeNanoseconds=UNIX)),
                             "rank1.json": js(tiny_trace(1, baseTimeNanoseconds=UNIX + 100 * 10**9))},
     2, "rank 1 (rank1.json) was recorded 100.0 s after rank 0 (rank0.json)")
case("one_host_seconds_apart", {
    "rank0.json": js(tiny_trace(0, baseTimeNanoseconds=UNIX, host_name="node7")),
    "rank1.json": js(tiny_trace(1, baseTimeNanoseconds=UNIX + 5 * 10**9, host_name="node7"))},
     2, "recorded 5.0 s after rank 0 (rank0.json) (one host (node7), one clock)")
case("hosts_seconds_apart", {"rank0.json": js(tiny_trace(0, baseTimeNanoseconds=UNIX, host_name="node1")),
                             "rank1.json": js(tiny_trace(1, baseTimeNanoseconds=UNIX + 5 * 10**9, host_name="node2"))},
     0, "")  # clocks of two hosts 5 s apart: absorbed by the clock alignment
case("collectives_disagree", {"rank0.json": js(tiny_trace(0)), "rank1.json": js(tiny_trace(1, elems=4000))},
     2, "disagree on 2 of 2 collectives of process group 0")
case("nccl_versions_mixed", {"rank0.json": js(tiny_trace(0, nccl_version="2.18.1")),
                             "rank1.json": js(tiny_trace(1, nccl_version="2.21.5"))},
     2, "NCCL 2.21.5: traces of different jobs")
# tensorboard_trace_handler with a repeating schedule: one file per cycle and rank, named host_pid.<ms>
case("cycles_together", {
    "node1_101.1700000000100.pt.trace.json": js(tiny_trace(0, steps=(2, 3, 4))),
    "node1_102.1700000000105.pt.trace.json": js(tiny_trace(1, steps=(2, 3, 4))),
    "node1_101.1700000000200.pt.trace.json": js(tiny_trace(0, steps=(7, 8, 9))),
    "node1_102.1700000000205.pt.trace.json": js(tiny_trace(1, steps=(7, 8, 9)))},
     0, "profiler cycle 2 of 2 (steps 7-9, the last complete one) analyzed; cycle 1 (steps 2-4) left out")
# a repeating schedule whose second cycle the loop ended before it recorded: torch.profiler writes, at exit, a trace
# of metadata and a cut step beside each rank's complete one (tensorboard_trace_handler's names)
EMPTY_CYCLE = [{"ph": "M", "name": "process_name", "pid": 1, "tid": 0, "args": {"name": "python"}},
               {"ph": "X", "cat": "Trace", "name": "PyTorch Profiler (0)", "pid": 1, "tid": 1, "ts": 2_000_000.0,
                "dur": 10.0, "args": {}},
               {"ph": "X", "cat": "user_annotation", "name": "ProfilerStep#10", "pid": 1, "tid": 1, "ts": 2_000_000.0,
                "dur": 2.0, "args": {}}]
case("cycle_ended_before_recording", {
    "rank0.1700000000100.pt.trace.json": js(tiny_trace(0, steps=(2, 3, 4))),
    "rank1.1700000000105.pt.trace.json": js(tiny_trace(1, steps=(2, 3, 4))),
    "rank0.1700000000300.pt.trace.json": js({"schemaVersion": 1, "distributedInfo": {"backend": "gloo", "rank": 0,
                                                                                     "world_size": 2},
                                              "traceEvents": EMPTY_CYCLE}),
    "rank1.1700000000305.pt.trace.json": js({"schemaVersion": 1, "distributedInfo": {"backend": "gloo", "rank": 1,
                                                                                     "world_size": 2},
                                              "traceEvents": EMPTY_CYCLE})},
     0, "rank0.1700000000300.pt.trace.json, rank1.1700000000305.pt.trace.json: recorded nothing")
case("cycle_not_there", {"rank0.json": js(tiny_trace(0)), "rank1.json": js(tiny_trace(1))}, 2,
     "--cycle 3: the traces hold 1 profiler cycle(s) (cycle 1: steps 2-3)", ["--cycle", "3"])
# torchtitan: one folder per profiled step
case("torchtitan_iterations", {f"iteration_{it}/rank{r}_trace.json": js(tiny_trace(r, steps=(it - 1, it)))
                               for it in (10, 20) for r in (0, 1)},
     0, "profiler cycle 2 of 2 (steps 19-20, the last complete one) analyzed")
case("steps_outside", {"rank0.json": js(tiny_trace(0)), "rank1.json": js(tiny_trace(1))}, 2,
     "the requested steps 10-19 select nothing: the traces hold steps 2-3", ["--steps", "10:20"])
NODE = [{"name": "V8.Execute", "cat": "v8", "ph": "X", "ts": 1000 + 50 * i, "dur": 40, "pid": 77, "tid": 1,
         "args": {}} for i in range(5)] + [{"name": "thread_name", "ph": "M", "pid": 77, "tid": 1,
                                            "args": {"name": "CrRendererMain"}}]
case("not_pytorch_node", {"node_trace.json": js({"traceEvents": NODE, "metadata": {"node": "20.1"}})}, 2,
     "node_trace.json: a Chrome trace without PyTorch events (no ProfilerStep, no cpu_op")
case("not_pytorch_bare_array", {"trace.json": js(NODE)}, 2, "a Chrome trace without PyTorch events")
# a Perfetto trace (protobuf TracePacket stream) saved under a .json name
case("perfetto_binary", {"rank0.json": bytes([0x0a, 0x1c, 0x82, 0x02, 0x06, 0x08, 0x01, 0x10, 0x02, 0x18, 0x03])
                         + b"\x00\x01perfetto" * 8}, 2, "a binary Perfetto trace (protobuf), not a JSON trace")


# the monitor's files (commprof.monitor) and PyTorch's own Flight Recorder dumps
def rollup(rank: int, first: int) -> bytes:
    steps = [[s, 1_700_000_000_000_000_000 + s * 10_000_000, 1_700_000_000_000_000_000 + (s + 1) * 10_000_000]
             for s in range(first, first + 3)]
    colls = [{"op": "all_reduce", "pg": "0", "count": 3, "bytes": 12, "durations_us": [],
              "issues": [[s, s + 1, 100.0 + rank] for s in range(first, first + 3)]}]
    return json.dumps({"schema": "commprof.monitor/1", "rank": rank, "world_size": 2, "backend": "gloo",
                       "first_step": first, "last_step": first + 2, "steps": steps, "collectives": colls,
                       "fr_lost": 0}).encode() + b"\n"


def hang(rank: int, entries: object, threads: object) -> bytes:
    return json.dumps({"schema": "commprof.hang/1", "rank": rank, "world_size": 2, "reason": "no step() for 600 s",
                       "step": 5, "flight_recorder": {"available": True, "entries": entries, "error": None},
                       "threads": threads}).encode()


GOOD_ENTRY = {"seq": 7, "op": "all_reduce", "pg": "0", "input_sizes": [[4]], "input_dtypes": ["Float"],
              "state": "scheduled", "retired": False, "created_unix_ns": 1_700_000_000_000_000_000}
case("monitor_torn_line", {"rank0.monitor.jsonl": rollup(0, 0) + rollup(0, 3)[:50],
                           "rank1.monitor.jsonl": rollup(1, 0)}, 0, "is not a complete monitor rollup")
case("hang_not_json", {"rank0.hang.json": b"{not json"}, 2, "none of its 1 monitor files can be read")
case("hang_wrong_types", {"rank0.hang.json": hang(0, ["not an entry", 5, {"seq": "x"}], 42),
                          "rank1.hang.json": hang(1, [GOOD_ENTRY], [{"name": "MainThread", "main": True,
                                                                     "stack": [["t.py", 3, "f", "x()"], "junk"]}])},
     0, "")
case("hang_other_schema", {"rank0.hang.json": b'{"schema": "something/9", "rank": 0}',
                           "rank1.hang.json": hang(1, [GOOD_ENTRY], [])}, 0, "not a commprof hang dump")
# a pickle that would run os.system("echo pwned") if its global were resolved: refused before anything runs
case("hostile_pickle", {"nccl_trace_rank_0": b"cos\nsystem\n(S'echo pwned'\ntR."}, 2,
     "refusing to load a Python object")


def main() -> None:
    for p in HERE.iterdir():
        if p.is_dir():
            shutil.rmtree(p)
    expected = {}
    for name, (files, exp) in CASES.items():
        d = HERE / name
        d.mkdir()
        for fname, data in files.items():
            (d / fname).parent.mkdir(parents=True, exist_ok=True)
            (d / fname).write_bytes(data)
        expected[name] = exp
    (HERE / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    print(f"{len(CASES)} cases written")


if __name__ == "__main__":
    main()
