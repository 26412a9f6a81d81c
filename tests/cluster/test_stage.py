"""On the local Ray cluster of .ci/stages/cluster.sh: the small recipe's
exports and rows as Ray tasks, a worker killed during a row, and the
result: every row once, fidelity equal to a serial export's."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from edge_backbones.errors import ClusterError
from edge_backbones.exporter.pipeline import export
from edge_backbones.report import cluster
from edge_backbones.report.recipe import load_exports
from edge_backbones.report.records import load_results, row_key
from tests.cluster.recipes import DEVICES, write_recipe

ADDRESS = os.environ.get("EDGE_BACKBONES_CLUSTER_ADDRESS")
KILLED = os.environ.get("EDGE_BACKBONES_CLUSTER_KILLED")
pytestmark = [
    pytest.mark.cluster_stage,
    pytest.mark.skipif(
        not ADDRESS, reason="needs the Ray cluster .ci/stages/cluster.sh"
    ),
]


@pytest.fixture(scope="module")
def cluster_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cluster")
    recipe = write_recipe(folder)
    out = folder / "report"
    started = time.monotonic()
    paths = cluster.collect_recipe(
        str(recipe),
        str(out),
        "laptop",
        cluster=ADDRESS,
        threads=(1,),
        runs=3,
        warmup=1,
    )
    return recipe, out, paths, time.monotonic() - started


def test_every_row_once_after_a_worker_was_killed(cluster_run):
    recipe, out, paths, seconds = cluster_run
    assert os.path.exists(KILLED), "the fake-pi worker was not killed"
    assert sorted(os.path.basename(p) for p in paths) == sorted(
        f"{name}.json" for name in DEVICES
    )
    for path in paths:
        results = load_results(path)
        keys = [row_key(row) for row in results["rows"]]
        assert len(keys) == len(set(keys))  # no duplicate
        modes = sorted(row["mode"] for row in results["rows"])
        keras = DEVICES[results["device"]["name"]]
        expected = ["dynamic", "fp32"] + (["keras"] if keras else [])
        assert modes == sorted(expected * 2)  # two models
        assert not results["runs"][-1].get("failures")


def test_fidelity_equals_a_serial_export(cluster_run, tmp_path):
    recipe, out, paths, _ = cluster_run
    serial = {}
    for kwargs in load_exports(str(recipe), str(tmp_path)):
        kwargs["out"] = str(tmp_path)
        for record in export(**kwargs):
            name = record.metadata["model"]["name"]
            serial[(name, record.mode)] = record.fidelity["levels"]
    for path in paths:
        for row in load_results(path)["rows"]:
            if row["kind"] != "tflite":
                continue
            key = (row["model"]["name"], row["mode"])
            assert row["fidelity"]["levels"] == serial[key], key


def test_resume_adds_nothing_and_a_device_without_node_fails(
    cluster_run, tmp_path
):
    recipe, out, paths, _ = cluster_run
    before = {p: load_results(p)["rows"] for p in paths}
    ghost = write_recipe(
        recipe.parent, {**DEVICES, "ghost": False}, name="ghost.toml"
    )
    started = time.monotonic()
    with pytest.raises(ClusterError) as caught:
        cluster.collect_recipe(
            str(ghost),
            str(out),
            "laptop",
            cluster=ADDRESS,
            device_timeout=3,
            threads=(1,),
            runs=3,
            warmup=1,
            resume=True,
        )
    assert time.monotonic() - started < 120
    message = str(caught.value)
    assert "'ghost'" in message and "device:ghost" in message
    assert "ray start" in message
    for path, rows in before.items():
        assert load_results(path)["rows"] == rows


def _strict_json(path):
    def refuse(constant):
        raise ValueError(f"{path}: {constant} is not JSON")

    with open(path) as f:
        return json.loads(f.read(), parse_constant=refuse)


def _rows(path):
    return {row_key(row): row for row in load_results(path)["rows"]}


def _device_resources_free(timeout):
    """Whether every device's resource is free again within `timeout` s:
    no row task of the interrupted driver still holds one."""
    import ray

    ray.init(address=ADDRESS, logging_level="ERROR")
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            free = ray.available_resources()
            if all(free.get(f"device:{d}", 0) >= 1 for d in DEVICES):
                return True
            time.sleep(0.5)
        return False
    finally:
        ray.shutdown()


def test_ctrl_c_on_the_driver_keeps_the_results_and_resume_completes(
    cluster_run, tmp_path
):
    recipe, first, paths, _ = cluster_run
    # the runtime-only device's rows (no TensorFlow start per row: quick)
    pi = write_recipe(recipe.parent, {"fake-pi": False}, name="pi.toml")
    paths = [p for p in paths if os.path.basename(p) == "fake-pi.json"]
    out = tmp_path / "report"
    results = [out / os.path.basename(p) for p in paths]
    command = [
        sys.executable, "-m", "edge_backbones.cli", "report",
        "--recipe", str(pi), "--cluster", ADDRESS, "--out", str(out),
        "--threads", "1", "--runs", "3", "--warmup", "1",
        # the artifacts of the first run are reused: no export to wait for
        "--resume",
    ]  # fmt: skip
    driver = subprocess.Popen(
        command, stderr=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    # Ctrl-C once a row is written and others are still to come
    deadline = time.monotonic() + 240
    while not any(p.exists() and load_results(p)["rows"] for p in results):
        assert driver.poll() is None, driver.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "no row within 240 s"
        time.sleep(0.2)
    driver.send_signal(signal.SIGINT)
    _, stderr = driver.communicate(timeout=60)
    assert driver.returncode == 130, stderr[-2000:]
    assert "interrupted" in stderr and "--resume" in stderr
    assert _device_resources_free(timeout=30), "row tasks still running"
    expected = {os.path.basename(p): _rows(p) for p in paths}
    partial = 0
    for path in results:
        if not path.exists():
            continue
        _strict_json(path)  # whole, strict JSON
        rows = _rows(path)
        # no half row: each one is a finished row of the full run
        for key, row in rows.items():
            assert set(row) == set(expected[path.name][key]), key
        partial += len(rows)
    assert 0 < partial < sum(len(rows) for rows in expected.values())
    resumed = cluster.collect_recipe(
        str(pi), str(out), "laptop", cluster=ADDRESS,
        threads=(1,), runs=3, warmup=1, resume=True,
    )  # fmt: skip
    for path in resumed:
        _strict_json(path)
        rows = _rows(path)
        full = expected[os.path.basename(path)]
        assert sorted(rows) == sorted(full)  # every row once
        for key, row in rows.items():
            if row["kind"] == "tflite":
                assert row["fidelity"] == full[key]["fidelity"], key
