"""The per-rank map step on a real Dask cluster (a local one, started by the test): same result as one process."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import commprof
from commprof.render.summary import summary
from conftest import ROOT, real

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c:
        yield c


def test_load_on_a_dask_cluster_equals_the_single_process_load(cluster):
    from distributed import Client, get_task_stream

    path = real("megatron_tp8_a100")
    local = commprof.load(path, workers=1)
    with Client(cluster) as client:
        workers = set(client.scheduler_info()["workers"])
        with get_task_stream(client) as stream:
            remote = commprof.load(path, executor=client.get_executor())
    # the parsing really ran as 8 tasks on the cluster's two worker processes
    tasks = [t for t in stream.data if "map_rank" in str(t["key"])]
    assert len(tasks) == 8 and len(workers) == 2 and {t["worker"] for t in tasks} <= workers
    assert [rt.rank for rt in remote.ranks] == list(range(8))
    assert summary(commprof.analyze(remote)) == summary(commprof.analyze(local))


def test_cli_report_with_dask_scheduler(cluster, tmp_path):
    path = real("megatron_tp8_a100")
    r = subprocess.run([sys.executable, "-m", "commprof", "report", str(path), "--format", "json", "-o",
                        str(tmp_path / "dask"), "-q", "--dask", cluster.scheduler_address],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    r2 = subprocess.run([sys.executable, "-m", "commprof", "report", str(path), "--format", "json", "-o",
                         str(tmp_path / "local"), "-q"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r2.returncode == 0, r2.stderr[-2000:]
    a = json.loads((tmp_path / "dask" / "summary.json").read_text())
    b = json.loads((tmp_path / "local" / "summary.json").read_text())
    assert a == b


def test_unreachable_scheduler_is_one_clear_error(tmp_path):
    r = subprocess.run([sys.executable, "-m", "commprof", "report", str(real("megatron_tp8_a100")), "-q",
                        "--format", "json", "-o", str(tmp_path / "x"), "--dask", "tcp://127.0.0.1:9"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.startswith("commprof: error: tcp://127.0.0.1:9: no Dask scheduler reachable there")
