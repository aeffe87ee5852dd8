"""pandas DataFrames at the notebook edge (pandas is imported only here, only when asked)."""

from __future__ import annotations

from typing import Any

from ..analysis.analyze import Report
from .summary import summary

TABLES = ("ranks", "collectives", "buckets", "stragglers", "bandwidth_model", "bandwidth_bins", "whatif", "advice",
          "findings")


def to_dataframe(rep: Report, table: str = "ranks") -> Any:
    """One table of summary.json as a DataFrame: ``ranks``, ``collectives``, ``buckets``, ``stragglers``,
    ``bandwidth_model``, ``bandwidth_bins``, ``whatif``, ``advice`` or ``findings``."""
    try:
        import pandas as pd
    except ImportError as e:  # an optional dependency: say which extra brings it
        raise ImportError("commprof.to_dataframe needs pandas: pip install 'commprof[notebooks]' (or pandas)") from e

    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; choose from {', '.join(TABLES)}")
    rows = summary(rep)[table]
    if table == "ranks":
        rows = [{k: v for k, v in r.items() if not isinstance(v, dict)} for r in rows]
    df = pd.DataFrame(rows)
    if table == "ranks" and not df.empty:
        df = df.set_index("rank")
    return df
