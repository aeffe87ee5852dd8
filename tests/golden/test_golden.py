"""Every real trace set and the example run give exactly the outputs pinned in ``expected/``: summary.json,
the terminal text and the merged Perfetto trace byte for byte, the plots by the data they draw.

An intended change of output is made by ``python tests/golden/make_golden.py NAME`` in a commit that says why.
"""

from __future__ import annotations

import difflib
import gzip

import pytest
from outputs import ROOT, outputs
from sets import COMPRESSED, EXPECTED, SETS


def _expected(name: str, fname: str) -> bytes:
    folder = ROOT / EXPECTED / name
    if fname in COMPRESSED:
        return gzip.decompress((folder / (fname + ".gz")).read_bytes())
    return (folder / fname).read_bytes()


@pytest.mark.parametrize("name", sorted(SETS))
def test_outputs_are_unchanged(name: str):
    got = outputs(SETS[name])
    for fname, data in got.items():
        want = _expected(name, fname)
        if data != want:
            diff = "\n".join(list(difflib.unified_diff(want.decode(errors="replace").splitlines(),
                                                       data.decode(errors="replace").splitlines(),
                                                       "expected", "got", lineterm="", n=1))[:60])
            pytest.fail(f"{name}/{fname} differs from the golden output:\n{diff}")


@pytest.mark.parametrize("name", sorted(SETS))
def test_headline_figures_add_up(name: str):
    """Each rank's figures in summary.json are one step's: comm = overlapped + exposed, step = compute only +
    overlapped + exposed + other, overlap % = overlapped / comm (to the rounding of 3 decimals)."""
    import json

    s = json.loads(_expected(name, "summary.json"))
    for r in s["ranks"]:
        if not r["steps"]:
            continue
        assert r["comm_ms"] == pytest.approx(r["overlapped_ms"] + r["exposed_comm_ms"], abs=2e-3)
        assert r["compute_ms"] == pytest.approx(r["compute_only_ms"] + r["overlapped_ms"], abs=2e-3)
        parts = r["compute_only_ms"] + r["overlapped_ms"] + r["exposed_comm_ms"] + r["other_ms"]
        assert r["step_ms"] == pytest.approx(parts, abs=4e-3)
        if r["comm_ms"]:
            assert r["overlap_pct"] == pytest.approx(100 * r["overlapped_ms"] / r["comm_ms"], abs=0.02)
