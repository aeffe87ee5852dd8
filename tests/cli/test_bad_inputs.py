"""The corpus of broken inputs in tests/data/bad/ (see make_corpus.py): each case gets exit 2 with one
clear line naming the file and the problem, or a report of what could be used with a warning saying what
was skipped.  Never a traceback, never a hang."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from commprof.__main__ import main
from conftest import ROOT

BAD = ROOT / "tests" / "data" / "bad"
EXPECTED = json.loads((BAD / "expected.json").read_text())


def test_corpus_has_at_least_20_kinds():
    assert len(EXPECTED) >= 20
    assert sorted(EXPECTED) == sorted(p.name for p in BAD.iterdir() if p.is_dir())


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_input(name: str, streamed: bool, tmp_path: Path, capsys, monkeypatch):
    """Each case read whole, and streamed slice by slice (as large traces are): the same outcome."""
    if streamed:
        from commprof.reader.decode import jsonio, stream
        monkeypatch.setattr(jsonio, "CHUNKED_MIN_BYTES", 1)
        monkeypatch.setattr(stream, "CHUNK_BYTES", 256)
        monkeypatch.setattr(stream, "READ_BYTES", 256)
    exp = EXPECTED[name]
    case = tmp_path / name
    shutil.copytree(BAD / name, case)
    before = {str(p.relative_to(case)): p.read_bytes() for p in case.rglob("*") if p.is_file()}
    out = tmp_path / "out"
    code = main(["report", str(case), "-o", str(out), "--format", "json,html", "-q", *exp["args"]])
    err = capsys.readouterr().err
    assert code == exp["exit"], err
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("commprof: error: "), err
        assert exp["text"] in lines[0]
        assert str(case) in lines[0]  # names the file or folder
        assert not out.exists() or not any(out.iterdir())
    else:
        s = json.loads((out / "summary.json").read_text())
        if exp["text"]:  # a warning, or a line of the header
            assert any(exp["text"] in w for w in s["warnings"] + s.get("notes", [])), s["warnings"]
        for r in s["ranks"]:
            assert r["overlapped_ms"] <= r["comm_ms"] + 1e-9 and r["exposed_comm_ms"] >= 0
        assert (out / "report.html").exists()
    # nothing the user had is changed
    assert {str(p.relative_to(case)): p.read_bytes() for p in case.rglob("*") if p.is_file()} == before


def test_hostile_names_are_harmless_in_the_terminal(tmp_path: Path, capsys):
    code = main(["report", str(BAD / "hostile_names"), "-o", str(tmp_path), "--format", "text,html", "-q"])
    assert code == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out
    html = (tmp_path / "report.html").read_text()
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_unreadable_file_is_named(tmp_path: Path, monkeypatch, capsys):
    d = tmp_path / "t"
    shutil.copytree(BAD / "missing_ranks", d)
    real = Path.read_bytes

    def deny(self):
        if self.name == "rank0.json":
            raise PermissionError(13, "Permission denied")
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", deny)
    assert main(["report", str(d), "-o", str(tmp_path / "o"), "--format", "json", "-q"]) == 0
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert any("rank0.json" in w and "permission denied" in w for w in s["warnings"])


def test_dangling_link_is_reported_not_followed(tmp_path: Path):
    d = tmp_path / "t"
    shutil.copytree(BAD / "missing_ranks", d)
    (d / "rank2.json").symlink_to(tmp_path / "nowhere.json")
    assert main(["report", str(d), "-o", str(tmp_path / "o"), "--format", "json", "-q"]) == 0
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert any("rank2.json" in w and "not a regular file" in w for w in s["warnings"])


def test_path_that_does_not_exist(tmp_path: Path, capsys):
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_a_stray_json_beside_the_monitors_files_does_not_stop_its_report(tmp_path: Path, capsys):
    """A job's own notes or metrics (.json) in a monitor folder are skipped with a line naming each, and the stall
    or hang verdict is still reported (they stopped it: "no usable trace events", exit 2); with no monitor files,
    the same folder is bad input."""
    for r in (0, 1):
        dump = {"schema": "commprof.hang/1", "rank": r, "world_size": 2, "backend": "gloo", "reason": "no step()",
                "step": 4, "flight_recorder": {"available": True, "error": None, "entries": [
                    {"seq": 1, "op": "all_reduce", "pg": "0", "input_sizes": [[256]], "input_dtypes": ["Float"],
                     "output_sizes": [[256]], "state": "completed", "retired": True, "created_unix_ns": 10**18}]
                    + ([] if r == 1 else [{"seq": 2, "op": "all_reduce", "pg": "0", "input_sizes": [[256]],
                                           "input_dtypes": ["Float"], "output_sizes": [[256]], "state": "started",
                                           "retired": False, "created_unix_ns": 10**18 + 1}])},
                "threads": [{"name": "MainThread", "ident": 1, "main": True,
                             "stack": [["/job/train.py", 20, "main", "loss.backward()"]]}]}
        (tmp_path / f"rank{r}.hang.json").write_text(json.dumps(dump))
    (tmp_path / "truth_rank0.json").write_text(json.dumps({"step_s": [0.1, 0.2]}))
    (tmp_path / "notes.json").write_text("[]")
    assert main(["report", str(tmp_path), "-o", str(tmp_path / "out"), "--format", "text,json"]) == 0
    out, err = capsys.readouterr()
    assert "skipped " + str(tmp_path / "truth_rank0.json") + ": no 'traceEvents' key" in err
    assert "notes.json: no usable trace events" in err and "rank 1" in out
    warned = json.loads((tmp_path / "out" / "summary.json").read_text())["warnings"]
    assert sum(w.startswith("skipped ") and w.endswith(", not read as a trace") for w in warned) == 2
    for f in tmp_path.glob("*.hang.json"):
        f.unlink()
    assert main(["report", str(tmp_path), "-o", str(tmp_path / "out2")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error: " in err and ("notes.json" in err or "truth_rank0.json" in err)


def _torch_layout_defects(text: bytes) -> dict[str, tuple[str, bytes, list[str]]]:
    """Defects placed in a trace written by torch (so that it is streamed): file name, bytes, extra CLI args."""
    import gzip

    mid = text.index(b'"dur": ', len(text) // 2)
    end_of_dur = text.index(b"\n", mid)
    name_at = text.index(b'"name": "', len(text) // 2) + len(b'"name": "')
    last = text.rindex(b"]")
    return {
        "truncated_json": ("rank0.json", text[: len(text) // 2], []),
        "truncated_gzip": ("rank0.json.gz", gzip.compress(text)[:-5000], []),
        "invalid_utf8": ("rank0.json", text[:name_at] + b"\xff\xfe" + text[name_at:], []),
        "nan": ("rank0.json", text[:mid] + b'"dur": NaN' + text[end_of_dur:], []),
        "huge_integer": ("rank0.json", text[:mid] + b'"dur": 99999999999999999999999' + text[end_of_dur:], []),
        "over_max_bytes": ("rank0.json.gz", gzip.compress(text), ["--max-bytes", str(len(text) // 2)]),
        "metadata_after_events": ("rank0.json", text[: last + 1] + b', "baseTimeNanoseconds": 5' + text[last + 1:],
                                  []),
        "intact": ("rank0.json.gz", gzip.compress(text), []),
    }


def test_streamed_large_traces_fail_and_recover_as_whole_reads(tmp_path: Path, capsys, monkeypatch):
    """Large traces in torch's layout are streamed (read, gunzipped and decoded a slice at a time).  Defects
    anywhere in them give the same exit code, the same error or warning, and the same summary as reading the
    file whole."""
    import gzip

    from commprof.reader.decode import jsonio, stream

    text = gzip.decompress((ROOT / "traces" / "example" / "rank0.pt.trace.json.gz").read_bytes())
    assert b'"traceEvents": [\n' in text  # torch's layout: streamed
    slices = []
    orig = stream._slices
    for name, (fname, data, args) in _torch_layout_defects(text).items():
        outcomes = []
        for streamed in (False, True):
            case = tmp_path / f"{name}-{streamed}" / "in"
            case.mkdir(parents=True)
            (case / fname).write_bytes(data)
            monkeypatch.setattr(jsonio, "CHUNKED_MIN_BYTES", 1 if streamed else 2**40)
            monkeypatch.setattr(stream, "CHUNK_BYTES", 64 * 1024)
            monkeypatch.setattr(stream, "_slices", lambda *a: (slices.append(1), orig(*a))[1])
            out = case.parent / "out"
            code = main(["report", str(case), "-o", str(out), "--format", "json", "-q", *args])
            err = capsys.readouterr().err.replace(str(case), "CASE")
            summary = (json.loads((out / "summary.json").read_text().replace(str(case), "CASE")) if code == 0
                       else None)
            outcomes.append((code, err, summary))
        assert outcomes[0] == outcomes[1], name
        if name not in ("intact", "metadata_after_events"):  # the latter: read again whole, no defect
            assert outcomes[0][0] == 2 or outcomes[0][2]["warnings"], name  # an error, or a warning says what
    assert slices  # the streamed reads were streamed


def test_a_step_range_that_holds_no_step_says_why(tmp_path: Path, capsys):
    """--steps 5:3: both integers, so "must be N or A:B with integers" misled; the line says B must be above A."""
    assert main(["report", str(tmp_path), "--steps", "5:3"]) == 2
    err = capsys.readouterr().err
    assert "5:3: A:B is the steps A to B - 1, so B must be above A" in err and err.count("\n") == 1
    assert main(["report", str(tmp_path), "--steps", "x"]) == 2
    assert "--steps must be N or A:B with integers" in capsys.readouterr().err
