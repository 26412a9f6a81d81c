"""On the local Ray cluster of .ci/stages/cluster.sh: the small recipe's
exports and rows as Ray tasks, a worker killed during a row, and the
result: every row once, fidelity equal to a serial export's."""

import os
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
