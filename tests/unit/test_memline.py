"""The CPU memory timeline from [memory] events paired block by block (commprof/reader/memory/memline.py)."""

from __future__ import annotations

import numpy as np
from builders import collective, parse

from commprof.reader.memory.memevents import MEMORY_BUCKET_NS
from commprof.reader.memory.memline import live_line

MiB = 1 << 20
B = MEMORY_BUCKET_NS  # one event per bucket keeps each value visible


def _blocks(*events: tuple[int, int, int]) -> np.ndarray:
    return np.array([[t for t, _, _ in events], [a for _, a, _ in events], [b for _, _, b in events]], np.int64)


def _value_at(line: np.ndarray, t: int) -> int:
    return int(line[1][np.searchsorted(line[0], t, side="right") - 1])


def test_a_block_counts_from_its_allocation_to_its_free():
    line = live_line(_blocks((0, 0x10, 4 * MiB), (B, 0x20, 2 * MiB), (2 * B, 0x10, -4 * MiB), (3 * B, 0x20, -2 * MiB)),
                     ())
    assert [_value_at(line, k * B) for k in range(4)] == [4 * MiB, 6 * MiB, 2 * MiB, 0]


def test_a_free_of_a_block_allocated_before_the_profiler_subtracts_nothing():
    line = live_line(_blocks((0, 0x99, -8 * MiB), (B, 0x10, MiB)), ())
    assert _value_at(line, 0) == 0 and _value_at(line, B) == MiB


def test_a_new_block_at_a_live_address_means_the_old_one_was_freed():
    line = live_line(_blocks((0, 0x10, 4 * MiB), (B, 0x10, 4 * MiB), (2 * B, 0x10, 4 * MiB)), ())
    assert [_value_at(line, k * B) for k in range(3)] == [4 * MiB] * 3  # not 4, 8, 12


def test_a_staging_copy_made_before_the_transfer_is_freed_when_the_collective_ends():
    # gloo's reduce-scatter: called at 10B, copies its input at 11B, transfers 20B..40B; its worker frees the copy
    c = collective(20 * B, 40 * B, op="reduce_scatter_tensor", issue=10 * B)
    line = live_line(_blocks((11 * B, 0x10, 4 * MiB), (30 * B, 0x20, MiB), (50 * B, 0x20, -MiB)), (c,))
    assert _value_at(line, 11 * B) == 4 * MiB
    assert _value_at(line, 30 * B) == 5 * MiB
    assert _value_at(line, 40 * B) == MiB  # the copy freed at the collective's end
    assert _value_at(line, 50 * B) == 0


def test_a_block_never_freed_outside_a_collective_call_stays_live():
    c = collective(20 * B, 40 * B, issue=10 * B)
    # allocated during the transfer (after it began): the training thread's, not the backend's copy
    line = live_line(_blocks((0, 0x10, MiB), (25 * B, 0x20, 2 * MiB)), (c,))
    assert _value_at(line, 60 * B) == 3 * MiB


def _memory_event(ts_us: float, addr: int, nbytes: int, total: int) -> dict:
    return {"ph": "i", "name": "[memory]", "pid": 1, "tid": 1, "ts": ts_us, "s": "t",
            "args": {"Total Reserved": 0, "Total Allocated": total, "Bytes": nbytes, "Addr": addr,
                     "Device Type": 0, "Device Id": -1}}


# the timeline is kept for ranks running FSDP2 (its only reader): one of its record functions
_FSDP = {"ph": "X", "name": "FSDP::pre_forward", "cat": "user_annotation", "pid": 1, "tid": 1, "ts": 1, "dur": 1,
         "args": {}}


def test_the_reader_gives_live_bytes_on_cpu_where_the_allocator_total_drifts():
    # a copy freed by another thread: the allocator's total never comes down; the live line does (the reuse)
    events = [{"ph": "X", "name": "ProfilerStep#1", "cat": "user_annotation", "pid": 1, "tid": 1, "ts": 0,
               "dur": 1000, "args": {}}, _FSDP,
              _memory_event(100, 0x10, 4 * MiB, 4 * MiB),
              _memory_event(400, 0x10, 4 * MiB, 8 * MiB),  # the same address again: freed unseen in between
              _memory_event(700, 0x20, MiB, 9 * MiB)]
    rt = parse({"traceEvents": events})
    assert rt.memory_peak["cpu:-1"][0] == 5 * MiB  # not the allocator's 9 MiB
    assert int(rt.memory_line["cpu:-1"][1].max()) == 5 * MiB
    events.remove(_FSDP)
    assert parse({"traceEvents": events}).memory_line == {}  # without FSDP; the peak is still the live bytes
    assert parse({"traceEvents": events}).memory_peak["cpu:-1"][0] == 5 * MiB


def _memory_trace(n: int, odd: dict | None = None) -> dict:
    events = [{"ph": "X", "name": "ProfilerStep#1", "cat": "user_annotation", "pid": 1, "tid": 1, "ts": 0,
               "dur": 10 * n + 100, "args": {}}, _FSDP]
    total = 0
    for k in range(n):  # allocate, and free every other block later
        size = (k % 7 + 1) * 4096
        total += size
        events.append(_memory_event(10 * k, 0x1000 * (k + 1), size, total))
        if k % 2:
            total -= size
            events.append(_memory_event(10 * k + 5, 0x1000 * (k + 1), -size, total))
    if odd is not None:
        events[-1]["args"].update(odd)
    return {"traceEvents": events}


def test_memory_read_in_slices_is_the_memory_read_whole(tmp_path, monkeypatch):
    """Large traces are decoded a slice at a time: the timeline and the blocks gather every slice's events."""
    import json

    import commprof
    from commprof.reader.decode import jsonio, stream

    p = tmp_path / "rank0.json"
    p.write_text(json.dumps(_memory_trace(400)))
    whole = commprof.load(p).ranks[0]
    monkeypatch.setattr(jsonio, "CHUNKED_MIN_BYTES", 1)
    monkeypatch.setattr(stream, "CHUNK_BYTES", 2048)
    calls: list[int] = []
    orig = stream._slices
    monkeypatch.setattr(stream, "_slices", lambda *a: (calls.append(1), orig(*a))[1])
    sliced = commprof.load(p, workers=1).ranks[0]
    assert calls  # the sliced path was taken
    assert whole.memory_peak == sliced.memory_peak
    assert np.array_equal(whole.memory_line["cpu:-1"], sliced.memory_line["cpu:-1"])
    live = 0
    for k in range(400):
        live += (k % 7 + 1) * 4096 * (k % 2 == 0)
    # the last bucket's largest value: before the last block (odd: freed, 4096 bytes) was freed
    assert whole.memory_line["cpu:-1"][1][-1] == live + 4096


def test_an_odd_memory_event_reads_the_others_the_same():
    """One event with a Bytes that is not an integer: the slice is read event by event (same peaks and totals);
    the blocks of that device cannot be paired, so its timeline is the allocator's totals."""
    plain, odd = parse(_memory_trace(50)), parse(_memory_trace(50, {"Bytes": "4096"}))
    assert np.array_equal(plain.memory_line["cpu:-1"][0], odd.memory_line["cpu:-1"][0])
    totals = parse(_memory_trace(50, {"Addr": True}))
    assert totals.memory_peak["cpu:-1"][0] == int(totals.memory_line["cpu:-1"][1].max())
    assert odd.memory_peak["cpu:-1"][0] >= plain.memory_peak["cpu:-1"][0]
