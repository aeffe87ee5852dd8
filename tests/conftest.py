from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Real traces nobody here wrote live in ../shared/traces beside the checkout (CI lays a copy there too).
SHARED = Path(os.environ.get("COMMPROF_SHARED_TRACES", ROOT.parent / "shared" / "traces"))
EXAMPLE = ROOT / "traces" / "example"


def shared(rel: str) -> Path:
    p = SHARED / rel
    if not p.exists():
        pytest.skip(f"real trace {p} is not available (set COMMPROF_SHARED_TRACES)")
    return p


@pytest.fixture(scope="session")
def gloo_run(tmp_path_factory):
    """One real 2-rank gloo DDP run traced with commprof (shared by several tests)."""
    from commprof.demo import launch

    out = tmp_path_factory.mktemp("gloo_run")
    launch(out, nproc=2, steps=7, width=256, layers=4, bucket_cap_mb=0.25, batch=32)
    return out
