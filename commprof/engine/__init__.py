"""``load()``: map over ranks (processes, any ``concurrent.futures`` executor, Dask), per-rank digest, spill."""

from .load import LoadedRun, digests_of, load

__all__ = ["LoadedRun", "digests_of", "load"]
