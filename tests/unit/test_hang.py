"""The hang verdict on hand-built dumps: PyTorch's own pickled Flight Recorder dumps (read without resolving any
object), the three verdicts, and the rule that names the odd rank."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from commprof.analysis.production.hang import diagnose
from commprof.errors import InputError
from commprof.reader.monitor import read_monitor
from commprof.reader.safepickle import load_plain


def _entry(seq: int, op: str = "all_reduce", size: int = 1024, completed: bool = True) -> dict:
    """One entry as NCCL's Flight Recorder pickles it."""
    return {"record_id": seq, "pg_id": 0, "process_group": ("0", "default_pg"), "collective_seq_id": seq,
            "p2p_seq_id": 0, "op_id": seq, "profiling_name": f"nccl:{op}", "time_created_ns": 10**18 + seq,
            "input_sizes": [[size]] if op != "barrier" else [], "input_dtypes": ["Float"] if op != "barrier" else [],
            "output_sizes": [[size]], "output_dtypes": ["Float"], "state": "completed" if completed else "started",
            "time_discovered_started_ns": 1, "time_discovered_completed_ns": 2 if completed else None,
            "retired": completed, "timeout_ms": 600000, "is_p2p": False, "frames": []}


def _dump(folder: Path, rank: int, entries: list[dict]) -> None:
    doc = {"version": "2.10", "pg_config": {"0": {"name": "0", "desc": "default_pg", "ranks": "[0, 1, 2]"}},
           "pg_status": {}, "entries": entries}
    (folder / f"nccl_trace_rank_{rank}").write_bytes(pickle.dumps(doc))


def test_pytorchs_pickled_dumps_are_read_and_a_rank_that_never_arrived_is_named(tmp_path: Path):
    for r in (0, 1):
        _dump(tmp_path, r, [_entry(s) for s in range(1, 5)] + [_entry(5, completed=False)])
    _dump(tmp_path, 2, [_entry(s) for s in range(1, 5)])
    h = diagnose(read_monitor(tmp_path))
    assert h is not None and h.kind == "not reached" and h.culprit_ranks == (2,)
    assert "ranks 0, 1 wait in all_reduce #5 of process group 0 (all_reduce([1024] Float))" in h.text
    assert "its last collective was all_reduce #4" in h.text


def test_a_different_call_is_a_mismatch_and_a_tie_names_every_rank(tmp_path: Path):
    for r in (0, 1):
        _dump(tmp_path, r, [_entry(1), _entry(2, completed=False)])
    _dump(tmp_path, 2, [_entry(1), _entry(2, op="barrier", completed=False)])
    h = diagnose(read_monitor(tmp_path))
    assert h.kind == "mismatch" and h.culprit_ranks == (2,)
    assert "ranks 0, 1 called all_reduce([1024] Float); rank 2 called barrier()" in h.text
    two = tmp_path / "two"
    two.mkdir()
    _dump(two, 0, [_entry(1), _entry(2, size=8, completed=False)])
    _dump(two, 1, [_entry(1), _entry(2, size=16, completed=False)])
    assert diagnose(read_monitor(two)).culprit_ranks == (0, 1)  # one against one: no majority to trust


def test_every_rank_in_the_same_call_is_a_stall(tmp_path: Path):
    for r in (0, 1, 2):
        _dump(tmp_path, r, [_entry(1), _entry(2, completed=False)])
    h = diagnose(read_monitor(tmp_path))
    assert h.kind == "stalled" and h.culprit_ranks == () and "the transfer itself stalls" in h.text


def test_a_pickle_that_names_any_object_is_refused(tmp_path: Path):
    p = tmp_path / "nccl_trace_rank_0"
    p.write_bytes(pickle.dumps({"entries": [], "when": Path("/tmp")}))  # a pathlib object: a global reference
    with pytest.raises(InputError, match="refusing to load a Python object"):
        load_plain(p)
    p.write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")
    with pytest.raises(InputError, match=r"refusing to load a Python object \(os.system\)"):
        load_plain(p)
