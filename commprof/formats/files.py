"""File names: what ``commprof.trace()`` writes per rank and what ``report`` writes; what is not a trace."""

from __future__ import annotations

TRACE_SUFFIX = ".pt.trace.json.gz"
SIDECAR_SUFFIX = ".commprof.json"
SUMMARY = "summary.json"
SUMMARY_SCHEMA = "commprof.summary/1"
MERGED = "merged.json"
HTML = "report.html"
REPORT_DIR = "commprof-report"
COMPARE = "compare.json"
COMPARE_HTML = "compare.html"
COMPARE_DIR = "commprof-compare"
DEMO_DIR = "commprof-demo"  # where ``python -m commprof demo`` trains and traces
# JSON files in a trace folder that are commprof's own outputs, not traces
NOT_TRACES = frozenset({SUMMARY, MERGED, COMPARE})
# commprof's files that are not traces, by suffix: sidecars, the monitor's hang dumps
NOT_TRACE_SUFFIXES = (SIDECAR_SUFFIX, ".hang.json")


def plot_name(name: str) -> str:
    """The PNG file of a report's plot (beside report.html)."""
    return f"{name}.png"


def trace_name(rank: int) -> str:
    return f"rank{rank}{TRACE_SUFFIX}"


def sidecar_name(rank: int) -> str:
    return f"rank{rank}{SIDECAR_SUFFIX}"


def sidecar_name_for(trace: str) -> str:
    """The sidecar that would sit beside a trace file of this name."""
    for suffix in (".pt.trace.json.gz", ".pt.trace.json", ".json.gz", ".json"):
        if trace.endswith(suffix):
            return trace[: -len(suffix)] + SIDECAR_SUFFIX
    return trace + SIDECAR_SUFFIX
