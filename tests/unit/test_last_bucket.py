"""The last DDP bucket's finding stands only where its collective forms the tail (ends last of its step's buckets):
on gloo the buckets' all-reduces can run at once on worker threads, and a larger earlier one end after it (the 500
Mbit/s netns traces: 29.4 MB from 178.7 to 738.6 ms, the 4.2 MB last bucket from 189.5 to 377.6 ms), where "a
smaller last bucket shortens the tail" was wrong."""

from __future__ import annotations

from commprof.analysis.bandwidth import Bandwidth
from commprof.analysis.ddp.buckets import BucketStep, bucket_stats
from commprof.analysis.findings import _bucket_rules

MS = 1_000_000


def _rows(last_end_ms: float, first_end_ms: float) -> list[BucketStep]:
    out = []
    for step in (1, 2, 3):
        for rank in (0, 1):
            out += [BucketStep(rank=rank, step=step, index=0, bytes=29_400_000, params=4, ready_ns=100 * MS,
                               launch_ns=101 * MS, start_ns=180 * MS, end_ns=int(first_end_ms * MS),
                               exposed_ns=int((first_end_ms - 190) * MS)),
                    BucketStep(rank=rank, step=step, index=1, bytes=4_200_000, params=2, ready_ns=188 * MS,
                               launch_ns=189 * MS, start_ns=190 * MS, end_ns=int(last_end_ms * MS),
                               exposed_ns=int((last_end_ms - 190) * MS))]
    return out


def _said(rows: list[BucketStep]) -> list[str]:
    return [f.text for f in _bucket_rules(bucket_stats(rows), Bandwidth((), (), {}))
            if f.text.startswith("The last DDP bucket")]


def test_the_last_bucket_is_the_tail_only_where_it_ends_last():
    concurrent = bucket_stats(_rows(last_end_ms=378, first_end_ms=739))
    assert [b.ends_last for b in concurrent] == [1.0, 0.0]
    assert _said(_rows(last_end_ms=378, first_end_ms=739)) == []  # the big first bucket ends last: not this finding
    said = _said(_rows(last_end_ms=420, first_end_ms=300))  # in order: the last bucket's all-reduce is the tail
    assert len(said) == 1 and "(4.2 MB) is 100% exposed" in said[0]
