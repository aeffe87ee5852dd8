"""Workloads commprof ships: the demo (DDP over gloo) and a GPipe pipeline, for the quick start, the tests
and the benchmarks."""
