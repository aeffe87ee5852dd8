"""Data-parallel communication on the critical path names the remedy of the wrapper the run uses: a user's FSDP2
run over gloo was told to overlap it with "DDP bucket size, FSDP prefetch" beside the FSDP replay's "no FSDP
setting is predicted to gain more than 5%" (its collectives block the training thread there)."""

from __future__ import annotations

from commprof.analysis.crossrank.critfindings import _HOW, _remedy, data_how
from commprof.analysis.crossrank.pgkind import DATA


def test_the_remedy_follows_the_wrapper_and_the_backend():
    assert "DDP's bucket size" in data_how(fsdp=False, ddp=True, gloo=True)
    assert "set_modules_to_forward_prefetch" in data_how(fsdp=True, ddp=False, gloo=False)
    assert data_how(fsdp=False, ddp=False, gloo=False) == _HOW[DATA]  # neither seen: the generic remedy
    fsdp_gloo = _remedy(data_how(fsdp=True, ddp=False, gloo=True), 49.17)
    assert fsdp_gloo.startswith("On gloo FSDP2's collectives run on the training thread, so no FSDP setting hides")
    assert "up to 49.17 ms per step" in fsdp_gloo and "could save" not in fsdp_gloo
    ddp = _remedy(data_how(fsdp=False, ddp=True, gloo=True), 7.69)
    assert ddp.startswith("Overlapping it with compute (overlapping the gradient all-reduces") and "7.69 ms" in ddp
