"""Golden numbers on real traces that nobody here wrote (tests/data/real, see each README)."""

from __future__ import annotations

import dataclasses
import gzip
import json
from collections import Counter

import numpy as np
import pytest

import commprof
from commprof.analysis.crossrank.matching import cross_rank
from conftest import EXAMPLE, real


def raw_events(path):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as f:
        return json.load(f)["traceEvents"]


def test_h100_world1_allreduces_every_parameter_once_per_step():
    run = commprof.load(real("h100-world1"))
    (rt,) = run.ranks
    assert rt.device_kind == "cuda" and rt.world_size == 1 and rt.backend == "nccl"
    assert [s.number for s in rt.steps] == [2, 3, 4]
    for s in rt.steps:
        cs = [c for c in rt.collectives if c.step == s.number]
        assert {c.op for c in cs} == {"all_reduce"}
        assert sum(c.bytes for c in cs) == 4 * 101_794_792
        assert all(c.start_ns is None for c in cs)  # world size 1: NCCL runs no kernel
    rep = commprof.analyze(run)
    (row,) = rep.collectives
    assert row.bytes == 4 * 101_794_792 and row.count == 13


def test_fsdp2_on_gloo_names_the_calls_and_counts_full_bytes():
    """FSDP2 over gloo, plain profiler: reduce-scatters (run by gloo as all-reduces) and all-gathers named as the
    user's calls, with bytes = max(input, output) = the unsharded block (README of the set)."""
    run = commprof.load(real("fsdp2_gloo_cpu"))
    block, head = 4 * (256 * 256 + 256), 4 * (256 * 10 + 10)
    for rt in run.ranks:
        for s in rt.steps:
            got = Counter((c.op, c.bytes) for c in rt.collectives if c.step == s.number)
            assert got == {("all_gather_into_tensor", block): 8, ("all_gather_into_tensor", head): 1,
                           ("reduce_scatter_tensor", block): 4, ("reduce_scatter_tensor", head): 1}
        assert all(c.start_ns is not None for c in rt.collectives)  # each paired with its gloo transfer
    rep = commprof.analyze(run)
    rows = {c.op: c for c in rep.collectives}
    assert rows["all_gather_into_tensor"].count == 9 and rows["reduce_scatter_tensor"].count == 5
    assert rows["all_gather_into_tensor"].bytes == 8 * block + head
    assert not [w for w in rep.warnings if "unknown" in w or "differs" in w]


def test_a_step_cut_by_the_end_of_the_recording_is_left_out():
    """The real stub: ProfilerStep#8 (~11 µs, no work) after #7 (~12 ms); per-step figures are #7's."""
    run = commprof.load(real("ddp_gloo_cut_step"))
    rep = commprof.analyze(run)
    for rt, o in zip(run.ranks, rep.overlaps, strict=True):
        assert [s.number for s in rt.steps] == [7]
        assert o.median("step_ns") > 5e6  # the whole step, not half of it
        assert any("ProfilerStep#8" in w and "cut by the end of the recording" in w for w in rt.warnings)
    (row,) = rep.collectives
    calls = [e for e in raw_events(real("ddp_gloo_cut_step") / "rank0.json.gz") if e.get("name") == "c10d::allreduce_"]
    assert row.op == "all_reduce" and row.count == len(calls) >= 2  # per step: the one step's calls


def test_nccl_data_allreduce_count_and_bytes_match_record_param_comms():
    path = real("hta/tests/data/nccl_parser_config/nccl_data.json.gz")
    ev = raw_events(path)
    rpc = [e for e in ev if e.get("name") == "record_param_comms" and e["args"].get("Collective name") == "allreduce"]
    want_bytes = sum(max(e["args"]["In msg nelems"], e["args"]["Out msg nelems"]) * 4 for e in rpc)
    (rt,) = commprof.load(path).ranks
    got = [c for c in rt.collectives if c.op == "all_reduce"]
    assert len(got) == len(rpc) == 15
    assert sum(c.bytes for c in got) == want_bytes
    assert all(c.group_size == 2 and c.process_group == "0" and c.dtype == "float32" for c in got)
    # every all-reduce was paired with its NCCL kernel
    assert all(c.name.startswith("ncclKernel_AllReduce_RING_LL_Sum_float") for c in got)
    kernels = [e for e in ev if e.get("cat") == "kernel" and e["name"].startswith("ncclKernel_AllReduce")]
    assert sum(c.duration_ns for c in got) == pytest.approx(sum(k["dur"] for k in kernels) * 1000, rel=1e-6)


def test_megatron_8_ranks_modern_names_matched_across_ranks():
    run = commprof.load(real("megatron_tp8_a100"))
    assert [rt.rank for rt in run.ranks] == list(range(8)) and run.world_size == 8
    for rt in run.ranks:
        executed = [c for c in rt.collectives if c.start_ns is not None]
        assert len(executed) == 84
        assert Counter(c.dtype for c in executed) == {"float16": 81, "float32": 3}
        assert all(c.name.startswith("ncclDevKernel_AllReduce_Sum_") for c in executed)
        assert all(c.algorithm == "RING" and c.protocol == "LL" for c in executed)
        assert executed[0].bytes == 4 * 2048 * 4096 * 2  # Input Dims [[4, 2048, 4096]], c10::Half
    cr = cross_rank(run.ranks)
    (g,) = [g for g in cr.groups if g.process_group == "0"]
    assert g.ranks == tuple(range(8)) and g.arrival_ns.shape == (84, 8)
    # one node, one clock: offsets are tiny, and matched kernels end together
    assert max(abs(v) for v in cr.offsets_ns.values()) < 100_000
    assert np.median(g.end_ns.max(axis=1) - g.end_ns.min(axis=1)) < 100_000


def test_dlrm_8_ranks_old_names_alltoall_and_allreduce():
    run = commprof.load(real("dlrm_8gpu_v100"))
    assert [rt.rank for rt in run.ranks] == list(range(8))
    for rt in run.ranks:
        ops = Counter(c.op for c in rt.collectives if c.start_ns is not None)
        assert ops == {"all_to_all_single": 5, "all_reduce": 3}  # c10d::alltoall_base_ calls
    rep = commprof.analyze(run)
    # the README: rank 7 spends least time in NCCL (it arrives last, the others wait for it)
    waits = rep.cross.wait_ms_per_step
    assert min(waits, key=waits.get) == 7
    assert rep.cross.stragglers and rep.cross.stragglers[0].rank == 7
    # its 3 all-reduces carry all 16 gradients' bytes in another grouping (two DDP modules): said so, not "are not
    # its gradients (2.49 MB)" beside the same 2.49 MB
    why = next(f.text for f in rep.findings if f.text.startswith("No what-if prediction"))
    assert "all-reduces carry its 16 gradients' 2.49 MB, but not grouped in the order" in why


def test_dlrm_clock_shift_gives_same_answers(tmp_path):
    src = real("dlrm_8gpu_v100")
    for p in sorted(src.glob("*.json.gz")):
        doc = json.loads(gzip.decompress(p.read_bytes()))
        if p.name.startswith("worker3_"):
            for e in doc["traceEvents"]:
                if "ts" in e:
                    e["ts"] += 7_000_000  # 7 seconds ahead
        (tmp_path / p.name.removesuffix(".gz")).write_text(json.dumps(doc))
    a = commprof.analyze(commprof.load(src))
    b = commprof.analyze(commprof.load(tmp_path))
    assert abs(b.cross.offsets_ns[3] - a.cross.offsets_ns[3] + 7_000_000_000) < 1_000
    assert a.cross.wait_ms_per_step == pytest.approx(b.cross.wait_ms_per_step, abs=1e-3)
    assert [(s.rank, s.late_count) for s in a.cross.stragglers] == [(s.rank, s.late_count) for s in b.cross.stragglers]
    assert [o.window.overlap_pct for o in a.overlaps] == pytest.approx([o.window.overlap_pct for o in b.overlaps])


def test_hta_two_ranks_of_128_report_missing_ranks():
    run = commprof.load(real("hta/tests/data/trace_filter"))
    assert [rt.rank for rt in run.ranks] == [0, 1] and run.world_size == 128
    assert len(run.missing_ranks) == 126
    assert any("missing ranks" in w for w in run.warnings)


@pytest.mark.parametrize("rel,rank,backend", [
    ("hta/tests/data/cpu_only/rank-34.Jul_15_10_52_41.1074.pt.trace.json.gz", 34, "gloo"),
    ("hta/tests/data/distributed_info_unavailable/distributed_info_not_found.json.gz", 0, None),
    ("hta/tests/data/rank_unavailable/rank_not_found.json.gz", 0, "nccl"),
    ("hta/tests/data/amd_trace/mi250_minitoy_train_ROCm6_2_kineto.json.gz", 0, None),
    ("hta/tests/data/large_integer_trace/rank-70.Mar_25_20_48_12.2861.pt.trace.json.gz", 70, None),
    ("hta/tests/data/ns_resolution_trace/rank-0.Apr_03_18_51_38.1102.pt.trace.json.gz", 0, None),
])
def test_edge_case_traces_load_and_analyze(rel, rank, backend):
    run = commprof.load(real(rel))
    (rt,) = run.ranks
    assert rt.rank == rank
    if backend:
        assert rt.backend == backend
    rep = commprof.analyze(run)
    for o in rep.overlaps:
        assert 0 <= o.window.overlapped_ns <= o.window.comm_ns


def test_cpu_only_gloo_trace_counts_gloo_transfers_as_comm():
    (rt,) = commprof.load(real("hta/tests/data/cpu_only/rank-34.Jul_15_10_52_41.1074.pt.trace.json.gz")).ranks
    assert rt.device_kind == "cpu"
    # ten gloo:all_reduce transfers on two pt_gloo_runloop threads, no c10d record on the CPU side
    assert len(rt.comm) == 10 and len(rt.collectives) == 10
    assert all(c.op == "all_reduce" and c.issue_ns is None for c in rt.collectives)
    assert Counter(c.bytes for c in rt.collectives) == {321271 * 4: 5, 2082411 * 4: 5}
    assert {c.group_size for c in rt.collectives} == {300}


@pytest.mark.parametrize("rel", ["megatron_tp8_a100", "h100-world1", "dlrm_8gpu_v100",
                                 "hta/tests/data/cpu_only", "hta/tests/data/df_index_resolver"])
def test_typed_fast_path_and_orjson_path_give_the_same_summary(rel):
    """The reader decodes straight into typed events (msgspec, args kept raw); documents it refuses go through
    orjson.  Both must give the same analysis, number for number."""
    from pathlib import Path

    import orjson

    from commprof.reader import parse_document
    from commprof.reader.decode import jsonio
    from commprof.reader.decode.events import Ev
    from commprof.render.summary import summary

    fast = commprof.load(real(rel))
    slow_ranks = []
    for rt in fast.ranks:
        p = Path(rt.path)
        raw = p.read_bytes()
        doc = orjson.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)  # plain dicts
        events = jsonio.read_document(p).events
        first = next(iter(events.it))[0] if isinstance(events, jsonio.Batches) else events[0]
        assert type(first) is Ev  # the fast path was taken (whole, or slice by slice for large files)
        slow_ranks.append(parse_document(p, jsonio.document(doc, p), rank_hint=rt.rank))
    slow = dataclasses.replace(fast, ranks=tuple(slow_ranks))  # the same run, its ranks read the other way
    assert summary(commprof.analyze(slow)) == summary(commprof.analyze(fast))


@pytest.mark.parametrize("rel", ["h100-world1", "megatron_tp8_a100", "hta/tests/data/df_index_resolver"])
def test_large_traces_decoded_slice_by_slice_give_the_same_summary(rel, monkeypatch):
    """Traces above a size are decoded a slice at a time (bounded memory); forced on small real traces with
    tiny slices, the analysis must not change."""
    from commprof.reader.decode import jsonio, stream
    from commprof.render.summary import summary

    whole = summary(commprof.analyze(commprof.load(real(rel))))
    monkeypatch.setattr(jsonio, "CHUNKED_MIN_BYTES", 1)
    monkeypatch.setattr(stream, "CHUNK_BYTES", 64 * 1024)
    calls = []
    orig = stream._slices
    monkeypatch.setattr(stream, "_slices", lambda *a: (calls.append(1), orig(*a))[1])
    assert summary(commprof.analyze(commprof.load(real(rel), workers=1))) == whole  # (calls seen here)
    assert calls  # the sliced path was taken


def _any_layout(text: str, tmp_path, monkeypatch, limit: int | None = None):
    """The trace read whole, then streamed a few bytes at a time: (whole, streamed) analyses."""
    from commprof.reader.decode import jsonio, stream

    p = tmp_path / "rank0.json"
    p.write_text(text)
    whole = commprof.analyze(commprof.load(p))
    monkeypatch.setattr(jsonio, "CHUNKED_MIN_BYTES", 1)
    monkeypatch.setattr(stream, "CHUNK_BYTES", 64)
    monkeypatch.setattr(stream, "READ_BYTES", 64)
    monkeypatch.setattr(stream, "HEAD_SEARCH_BYTES", 1)
    if limit is not None:
        monkeypatch.setattr(stream, "SLICE_LIMIT", limit)
    return whole, commprof.analyze(commprof.load(p)), p


def _events(k: int, args: str) -> list[dict]:
    return [{"ph": "X", "cat": "user_annotation", "name": f"ProfilerStep#{k}", "pid": 1, "tid": 1, "ts": 1000 * k,
             "dur": 900, "args": json.loads(args)},
            {"ph": "X", "cat": "cpu_op", "name": "aten::mm", "pid": 1, "tid": 1, "ts": 1000 * k + 100, "dur": 500}]


@pytest.mark.parametrize("dump", [lambda d: json.dumps(d), lambda d: json.dumps(d, indent=2),
                                  lambda d: json.dumps(d, indent=1, separators=(",", ":"))],
                         ids=["one line", "indent 2", "compact"])
def test_any_layout_is_streamed_and_nested_lists_of_objects_do_not_cut_events(dump, tmp_path, monkeypatch):
    """Events whose args hold lists of objects ('},{' inside an event) and metadata after the event list, in
    json.dump's layouts: streamed slice by slice, the same analysis as read whole."""
    from commprof.reader.decode import stream

    ev = [e for k in range(40) for e in _events(k, '{"x": [{"a": 1}, {"b": "},{"}]}')]
    text = dump({"traceEvents": ev, "distributedInfo": {"rank": 3, "world_size": 4, "backend": "gloo"}})
    calls = []
    orig = stream._slices
    monkeypatch.setattr(stream, "_slices", lambda *a: (calls.append(1), orig(*a))[1])
    whole, streamed, _p = _any_layout(text, tmp_path, monkeypatch)
    assert calls and streamed.run.ranks[0].rank == 3  # streamed, and the keys after the list were read
    assert [s.step for s in streamed.overlaps[0].steps] == [s.step for s in whole.overlaps[0].steps]
    assert len(streamed.overlaps[0].steps) == 40


def test_a_slice_that_cannot_be_cut_falls_back_to_a_whole_decode(tmp_path, monkeypatch):
    """An event whose args hold more '},{' than the cut tries, beyond the slice limit: read again whole."""
    from commprof.reader import parse_document
    from commprof.reader.decode import jsonio, stream

    ev = [e for k in range(10) for e in _events(k, json.dumps({"s": [{"a": i} for i in range(40)]}))]
    whole, streamed, p = _any_layout(json.dumps({"traceEvents": ev}), tmp_path, monkeypatch, limit=256)
    with pytest.raises(stream.ChunkLayoutError):
        parse_document(p, jsonio.read_document(p))
    assert [s.step for s in streamed.overlaps[0].steps] == [s.step for s in whole.overlaps[0].steps]
    assert len(streamed.overlaps[0].steps) == 10


def test_args_read_in_bulk_or_event_by_event_give_the_same_trace(tmp_path):
    """Runtime calls', kernels' and [memory] events' args are decoded in one call per slice; args that call
    refuses (null, a string, no args, integers beyond 64 bits) make it decode them one by one.  Either way the
    parse equals the one of the same document decoded by orjson into plain dicts."""
    import orjson

    from commprof.reader import parse_document
    from commprof.reader.decode import jsonio

    def trace(odd: bool) -> dict:
        ev = [{"ph": "X", "cat": "user_annotation", "name": "ProfilerStep#1", "pid": 1, "tid": 1, "ts": 0,
               "dur": 10_000}]
        for k in range(20):
            t = 100 + 400 * k
            ev.append({"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "pid": 1, "tid": 1, "ts": t,
                       "dur": 5, "args": {"External id": k, "cbid": 211, "correlation": k}})
            ev.append({"ph": "X", "cat": "kernel", "name": f"gemm{k}", "pid": 0, "tid": 7, "ts": t + 50,
                       "dur": 100, "args": {"device": k % 2, "stream": 7, "correlation": k, "grid": [1, 1, 1]}})
            ev.append({"ph": "i", "cat": "cpu_instant_event", "name": "[memory]", "pid": 1, "tid": 1, "ts": t,
                       "args": {"Device Type": 1, "Device Id": k % 2, "Total Allocated": 1000 * k,
                                "Total Reserved": 4000 * k, "Bytes": 1000}})
        if odd:
            ev[1]["args"] = None
            ev[2]["args"] = "not an object"
            del ev[4]["args"]
            ev[5]["args"]["correlation"] = 2**70  # orjson: a float, so no correlation
            ev[6]["args"] = {"Device Type": 1, "Device Id": 0, "Total Allocated": 10**9, "Total Reserved": "x"}
            ev[8]["args"] = {"device": {"nested": 1}, "correlation": 1}
        return {"traceEvents": ev, "distributedInfo": {"rank": 0, "world_size": 1}}

    for odd in (False, True):
        p = tmp_path / f"rank0_{odd}.json"
        p.write_text(json.dumps(trace(odd), indent=2))
        fast = parse_document(p, jsonio.read_document(p))
        slow = parse_document(p, jsonio.document(orjson.loads(p.read_bytes()), p))
        for lane in ("compute", "memcpy", "comm"):
            for col in ("start_ns", "end_ns", "step", "launch_ns"):
                assert np.array_equal(getattr(getattr(fast, lane), col), getattr(getattr(slow, lane), col))
        assert fast.memory_peak == slow.memory_peak and fast.memory_peak
        assert fast.device_busy == slow.device_busy
        launched = int((fast.compute.launch_ns >= 0).sum())
        assert launched == (20 if not odd else 17)  # the odd runtime calls and kernel args lose 3 links


def test_gzip_traces_read_the_same_without_isal(monkeypatch, tmp_path):
    """ISA-L's inflate where installed, zlib elsewhere: same bytes, same errors."""
    import zlib

    from commprof.errors import InputError
    from commprof.reader import parse_document
    from commprof.reader.decode import jsonio

    p = real("megatron_tp8_a100") / "megatron_kineto_0.json.gz"
    with_isal = jsonio.read_document(p, chunked=False)
    monkeypatch.setattr(jsonio, "_zlib", zlib)
    assert jsonio.read_document(p, chunked=False).events == with_isal.events
    cut = tmp_path / "rank0.json.gz"
    cut.write_bytes(p.read_bytes()[:50_000])
    data = p.read_bytes()
    bad = tmp_path / "bad" / "rank0.json.gz"
    bad.parent.mkdir()
    bad.write_bytes(data[:20_000] + bytes(b ^ 0x5A for b in data[20_000:21_000]) + data[21_000:])
    for chunked in (True, False):  # streamed, the error comes while the parser reads the events
        monkeypatch.setattr(jsonio, "CHUNKED_MIN_BYTES", 1 if chunked else 2**40)
        with pytest.raises(InputError, match="truncated gzip"):
            parse_document(cut, jsonio.read_document(cut))
        with pytest.raises(InputError, match="corrupt gzip data"):
            parse_document(bad, jsonio.read_document(bad))


def test_a_lone_event_without_args_reads_as_no_args(tmp_path):
    """One runtime call and one kernel, neither with args: the bulk decode of their (empty) args must not
    mistake them for zero events."""
    from commprof.reader import parse_document
    from commprof.reader.decode import jsonio

    ev = [{"ph": "X", "cat": "user_annotation", "name": "ProfilerStep#1", "pid": 1, "tid": 1, "ts": 0, "dur": 900},
          {"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "pid": 1, "tid": 1, "ts": 10, "dur": 5},
          {"ph": "X", "cat": "kernel", "name": "gemm", "pid": 3, "tid": 7, "ts": 50, "dur": 100}]
    p = tmp_path / "rank0.json"
    p.write_text(json.dumps({"traceEvents": ev}, indent=2))
    rt = parse_document(p, jsonio.read_document(p))
    assert rt.compute.launch_ns.tolist() == [-1] and rt.device_busy == {}
    assert rt.compute.start_ns.tolist() == [50_000]


def test_ddp_trace_with_sidecar_has_the_fsdp2_whatif_in_the_memory_section_and_in_whatifs():
    """The memory family's section carries the DDP -> FSDP2 what-if as WhatIf records (one per
    reshard_after_forward, each with its band), and summary.json's ``whatifs`` lists every section's what-ifs."""
    from commprof.render.summary import summary

    rep = commprof.analyze(commprof.load(EXAMPLE))
    sec = rep.section("memory")
    assert sec is not None and sec.detail.parallel is not None
    ws = [w for w in sec.whatifs if w.knob == "parallelism"]
    assert [dict(w.with_settings)["reshard_after_forward"] for w in ws] == [True, False]
    for w in ws:
        lo, hi = w.predicted_range_ms
        assert w.value == "fsdp2" and lo < w.predicted_step_ms < hi
    s = summary(rep)
    assert len(s["whatifs"]) == sum(len(x.whatifs) for x in rep.sections)
    items = [w for w in s["whatifs"] if w["knob"] == "parallelism"]
    assert [w["reshard_after_forward"] for w in items] == [True, False]
    assert {"predicted_step_ms", "predicted_range_ms", "predicted_peak_bytes"} <= set(items[0])
    assert s["parallelism"]["traced"] == "ddp" and len(s["parallelism"]["variants"]) == 2


def test_plain_fsdp2_trace_has_the_ddp_whatif_from_its_all_gathers():
    """tests/data/real/fsdp2_gloo_cpu (plain torch.profiler, 4 x Linear(256) units): the reverse what-if, FSDP2 ->
    DDP, with the units' sizes from the all-gathers; two variants (gradient_as_bucket_view False / True) in
    ``whatifs`` with their bands; no peaks without a memory timeline; dropped in the per-rank view."""
    from commprof.analysis.memory.family import per_rank
    from commprof.render.summary import summary

    rep = commprof.analyze(commprof.load(real("fsdp2_gloo_cpu")), whatif=("ddp",))
    a = rep.parallel
    assert a is not None and a.traced == "fsdp2" and a.world == 2
    assert dict(a.units)["0"] == 4 * (256 * 256 + 256)  # the all-gather's bytes
    assert any("all-gathers" in n for n in a.notes) and any("profile_memory" in n for n in a.notes)
    assert a.whatifs[0].state.total == 3 * sum(b for _u, b in a.units)  # params + grads + bucket copy (SGD)
    for w in a.whatifs:
        lo, hi = w.predicted_range_ms
        assert lo < w.predicted_step_ms < hi and w.predicted_peak_bytes is None
    items = [i for i in summary(rep)["whatifs"] if i["knob"] == "parallelism"]
    assert [(i["family"], i["value"], i["gradient_as_bucket_view"]) for i in items] == [
        ("memory", "ddp", False), ("memory", "ddp", True)]
    assert any(f.text.startswith("FSDP2 -> DDP") for f in rep.findings)
    sec = rep.section("memory")
    assert sec is not None and sec.detail.parallel_shown
    flat = per_rank(sec)
    assert flat.detail.parallel is None and not flat.whatifs and not any(x.knob == "parallelism" for x in flat.advice)
