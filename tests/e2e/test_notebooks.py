"""The notebooks run top to bottom with nbclient; their outputs are stripped in git."""

from __future__ import annotations

import pytest

from conftest import ROOT

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")


@pytest.mark.parametrize("name", ["quickstart.ipynb", "real_8_ranks.ipynb", "hta_side_by_side.ipynb"])
def test_notebook_runs(name):
    if name.startswith("hta"):
        pytest.importorskip("hta.trace_analysis", reason="HolisticTraceAnalysis is not installed")
    path = ROOT / "notebooks" / name
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "outputs must be stripped in git"
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(ROOT / "notebooks")}})
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 2
    html_tables = [o for o in outputs if "text/html" in o.get("data", {})]
    assert len(html_tables) >= 3  # DataFrames rendered
