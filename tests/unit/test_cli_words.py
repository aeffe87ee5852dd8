"""The library's errors name its parameters (``comm_kernels=``, ``cycle=``); the command line says them in its flags."""

from __future__ import annotations

import pytest

from commprof import InputError
from commprof.__main__ import in_flags
from commprof.engine.load import _rules


def test_a_bad_kernel_rule_is_named_by_its_parameter():
    with pytest.raises(InputError) as e:
        _rules(["bad["])
    assert e.value.path == "comm_kernels=" and "--" not in str(e.value)


@pytest.mark.parametrize(("library", "cli"), [
    ("comm_kernels=", "--comm-kernel"),
    ("cycle=3: the traces hold 2 profiler cycle(s)", "--cycle 3: the traces hold 2 profiler cycle(s)"),
    ("(cycle 1: steps 2-4): pick one with cycle=N", "(cycle 1: steps 2-4): pick one with --cycle N"),
    ("never one window (per_rank=True gives per-rank figures only)", "never one window (--per-rank gives per-rank "
                                                                     "figures only)"),
    ("above the size limit (raise it with max_bytes=)", "above the size limit (raise it with --max-bytes)"),
    ("over the 1 MB limit (perfetto_max_bytes=; 0 for no limit)", "over the 1 MB limit (--perfetto-max-mb; 0 for no "
                                                                  "limit)"),
    ("cannot write the report there (choose another out_dir=)", "cannot write the report there (choose another -o)"),
    ("rank0.json: not a trace (rank0.max_bytes=1)", "rank0.json: not a trace (rank0.max_bytes=1)"),
])
def test_the_command_line_translates_parameters_into_flags(library: str, cli: str):
    assert in_flags(library) == cli
