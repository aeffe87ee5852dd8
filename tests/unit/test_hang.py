"""The hang verdict on hand-built dumps: PyTorch's own pickled Flight Recorder dumps (read without resolving any
object), the three verdicts, and the rule that names the odd rank."""

from __future__ import annotations

import json
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


def _own_dump(folder: Path, rank: int, entries: list[dict], env: dict | None) -> None:
    """The monitor's own dump (rank{R}.hang.json), with the environment it records where ``env`` is given."""
    doc = {"schema": "commprof.hang/1", "rank": rank, "world_size": 4, "backend": "nccl", "reason": "no step() 600 s",
           "step": 7, "flight_recorder": {"available": True, "entries": entries, "error": None},
           "threads": [{"name": "MainThread", "ident": 1, "main": True,
                        "stack": [["/job/train.py", 81, "main", "dist.all_reduce(x)"]]}]}
    if env is not None:
        doc["env"] = env
    (folder / f"rank{rank}.hang.json").write_text(json.dumps(doc))


def _fr(seq: int, pending: bool = False) -> dict:
    return {"seq": seq, "op": "all_reduce", "pg": "0", "input_sizes": [[256]], "input_dtypes": ["Float"],
            "output_sizes": [[256]], "state": "started" if pending else "completed", "retired": not pending,
            "created_unix_ns": 10**18 + seq}


def _stuck(rank: int) -> list[dict]:
    """Rank 3 never issued #2; the others wait in it."""
    return [_fr(1)] + ([] if rank == 3 else [_fr(2, pending=True)])


def test_a_hang_names_the_variables_that_set_one_rank_apart(tmp_path: Path):
    """Every rank issued #2 and none completed it: no culprit from the calls, but rank 3 alone was started with
    another socket interface (its dump records it): told as evidence to check, with each rank's record in the
    verdict.  A per-device variable (CUDA_VISIBLE_DEVICES) set apart is the norm and not told; a dump without a
    record (older) stays without one."""
    for r in range(4):
        env = {"NCCL_SOCKET_IFNAME": "eth1" if r == 3 else "eth0", "CUDA_VISIBLE_DEVICES": "1" if r == 2 else "0"}
        _own_dump(tmp_path, r, [_fr(1), _fr(2, pending=True)], env)
    h = diagnose(read_monitor(tmp_path))
    assert h.kind == "stalled" and h.culprit_ranks == ()
    said = " ".join(h.text.split())
    assert ("Rank 3's environment differs from all 3 peers': NCCL_SOCKET_IFNAME=eth1 (theirs eth0); check whether "
            "that was meant (communication settings that differ between ranks") in said
    assert "CUDA_VISIBLE_DEVICES" not in said and "Rank 2's" not in said
    assert [s.env["NCCL_SOCKET_IFNAME"] for s in h.ranks] == ["eth0", "eth0", "eth0", "eth1"]
    old = tmp_path / "old"
    old.mkdir()
    for r in range(4):
        _own_dump(old, r, _stuck(r), None if r == 3 else {"NCCL_ALGO": "Ring"})
    h = diagnose(read_monitor(old))
    assert h.kind == "not reached" and h.culprit_ranks == (3,) and "environment" not in h.text
    assert h.ranks[3].env is None and h.ranks[0].env == {"NCCL_ALGO": "Ring"}


def test_the_culprit_s_variables_are_told_and_a_rollup_s_record_comes_first(tmp_path: Path):
    """Rank 3 never reached #2; its dump and its rollup both record its environment (the rollup's is the one read);
    an empty record is a record: rank 0 set nothing of note, and rank 3's MALLOC_ARENA_MAX is told against it."""
    for r in range(4):
        _own_dump(tmp_path, r, _stuck(r), {} if r == 0 else {"NCCL_P2P_DISABLE": "1"})
    line = {"schema": "commprof.monitor/1", "rank": 3, "world_size": 4, "steps": [[6, 1, 2]], "collectives": [],
            "env": {"MALLOC_ARENA_MAX": "2"}}
    (tmp_path / "rank3.monitor.jsonl").write_text(json.dumps(line) + "\n")
    h = diagnose(read_monitor(tmp_path))
    assert h.kind == "not reached" and h.culprit_ranks == (3,)
    said = " ".join(h.text.split())
    assert "rank 3 never reached it: it was at train.py:81 in main" in said
    assert "NCCL_P2P_DISABLE" not in said  # ranks 1 and 2 set it, rank 0 did not: no norm among the peers
    assert h.ranks[3].env == {"MALLOC_ARENA_MAX": "2"}
    peers = tmp_path / "peers"
    peers.mkdir()
    for r in range(4):
        _own_dump(peers, r, _stuck(r), {"NCCL_IB_DISABLE": "1"} if r == 3 else {})
    said = " ".join(diagnose(read_monitor(peers)).text.split())
    assert "Rank 3's environment differs from all 3 peers': NCCL_IB_DISABLE=1 (theirs unset)" in said


def test_a_rank_whose_loop_ended_is_told_and_the_failed_peers_stuck_call_is_the_first_it_never_issued(
        tmp_path: Path):
    """Rank 1's loop ended after step 29 (its monitor's last line says it closed without an exception) having
    issued all_reduce #64; rank 0's gloo failed #65 and #66 (a DDP step's two buckets) when rank 1 left, both
    retired.  The stuck call is #65, rank 0's pending one (not 'completed'), and rank 1 left its loop: not killed."""
    doc = {"schema": "commprof.hang/1", "rank": 0, "world_size": 2, "backend": "gloo", "step": 30,
           "reason": "exception: RuntimeError: Connection closed by peer",
           "flight_recorder": {"available": True, "entries": [_fr(s) for s in range(60, 67)], "error": None},
           "threads": [{"name": "MainThread", "ident": 1, "main": True,
                        "stack": [["/job/train.py", 107, "main", "loss.backward()"]]}]}
    (tmp_path / "rank0.hang.json").write_text(json.dumps(doc))
    issues = [[29, 63, 10.0], [29, 64, 20.0]]
    lines = [{"schema": "commprof.monitor/1", "rank": 1, "world_size": 2, "steps": [[29, 1, 2]],
              "collectives": [{"op": "all_reduce", "pg": "0", "count": 2, "bytes": 8, "issues": issues}]},
             {"schema": "commprof.monitor/1", "rank": 1, "world_size": 2, "steps": [], "collectives": [],
              "closed": True}]
    (tmp_path / "rank1.monitor.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    h = diagnose(read_monitor(tmp_path))
    assert h is not None and h.kind == "not reached" and h.culprit_ranks == (1,) and h.collective.seq == 65
    said = " ".join(h.text.split())
    assert "rank 0 was in all_reduce #65 of process group 0" in said and "when it failed" in said
    assert "rank 1 left its monitored loop after step 29 without an exception" in said and "killed" not in said
    r0 = h.ranks[0]
    assert r0.pending.seq == 65 and r0.last_completed.seq == 64 and h.ranks[1].status == "left"
    # without the closing line (killed, or an older file): a killed rank's last rollup may lag its last call by up
    # to `every` steps, so it moves nothing: the failed rank's last call, as before
    (tmp_path / "rank1.monitor.jsonl").write_text(json.dumps(lines[0]) + "\n")
    h = diagnose(read_monitor(tmp_path))
    assert h.kind == "died" and "killed, e.g. SIGKILL" in h.text and h.collective.seq == 66


def test_the_closing_rollup_holds_the_calls_of_the_step_the_loop_left(tmp_path: Path, monkeypatch):
    """A loop that breaks mid-step after a collective (a final metric all-reduce, a barrier): the closing line
    attributes that call to the unfinished step, so the hang verdict never says the rank did not issue it; a
    periodic rollup leaves it for the next one."""
    import os

    from commprof.capture import flightrec
    from commprof.capture.monitor import MonitorSession

    e = {"seq": 7, "op": "all_reduce", "pg": "0", "input_sizes": [[4]], "input_dtypes": ["Float"],
         "created_unix_ns": 5_000}
    monkeypatch.setattr(flightrec, "unavailable", lambda: None)
    monkeypatch.setattr(flightrec, "entries", lambda: [e])
    m = MonitorSession(tmp_path)
    m._fd = os.open(tmp_path / "rank0.monitor.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    m.step_num, m._step_start = 3, 4_000  # steps 0-2 done; step 3 began at 4 us and never ended
    m._rollup([(2, 1_000, 3_900)])
    m._rollup([], closed=True)
    os.close(m._fd)
    first, last = (json.loads(x) for x in (tmp_path / "rank0.monitor.jsonl").read_text().splitlines())
    assert first["collectives"] == [] and "closed" not in first
    assert last["closed"] is True and last["collectives"][0]["issues"] == [[3, 7, 1.0]]
