"""`report --cluster` without a cluster: Ray stays unimported when the flag
is absent, bad [[device]] tables and unreachable addresses fail in seconds
with typed errors that name the fix, and a row whose artifact a node
cannot load fails with that node's error."""

import os
import subprocess
import sys
import time

import pytest

from edge_backbones.errors import ClusterError, InputError
from edge_backbones.report.recipe import Device, load_devices, load_exports
from tests.cluster.recipes import write_recipe
from tests.conftest import REPO_ROOT


def test_devices_are_read_and_exports_skip_them(tmp_path):
    recipe = write_recipe(tmp_path)
    assert load_devices(recipe) == [
        Device("laptop", (1,), True),
        Device("fake-pi", (1,), False),
    ]
    names = [kwargs["name"] for kwargs in load_exports(recipe, "out")]
    assert names == ["mit_tiny", "vitdet_tiny"]


@pytest.mark.parametrize(
    "table, words",
    [
        ('name = "pi5"\nthread = [1]', "unknown key(s) ['thread']"),
        ("name = 5", "name = 5"),
        ('name = "pi5"\nthreads = [0]', "threads = [0]"),
        ('name = "pi5"\nkeras = "no"', "keras = 'no'"),
    ],
)
def test_bad_device_tables_name_the_key(tmp_path, table, words):
    recipe = tmp_path / "bad.toml"
    recipe.write_text(f'[model]\npreset = "mit_b0"\n[[device]]\n{table}\n')
    with pytest.raises(InputError) as caught:
        load_devices(recipe)
    assert words in str(caught.value) and "[[device]]" in str(caught.value)


def test_a_report_without_cluster_never_imports_ray(tiny_backbone, tmp_path):
    from edge_backbones.exporter.pipeline import export

    folder = tmp_path / "artifacts"
    export(tiny_backbone, image_size=32, modes="fp32", out=folder)
    code = (
        "import sys\n"
        "from edge_backbones.cli import main\n"
        "import edge_backbones.runtime\n"
        "status = main(['report', '--artifacts', sys.argv[1], '--out', "
        "sys.argv[2], '--runs', '2', '--warmup', '0', '--threads', '1'])\n"
        "assert status == 0, status\n"
        "print('ray' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", code, str(folder), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "False"


def test_unreachable_address_fails_in_seconds_naming_it():
    pytest.importorskip("ray")
    from edge_backbones.report.cluster import connect

    started = time.monotonic()
    with pytest.raises(ClusterError) as caught:
        connect("ray://127.0.0.1:9")  # the discard port: nothing listens
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert "'ray://127.0.0.1:9'" in message and "ray start --head" in message


def test_not_an_address():
    pytest.importorskip("ray")
    from edge_backbones.report.cluster import connect

    with pytest.raises(ClusterError, match="not an address"):
        connect("my-laptop")


@pytest.mark.parametrize(
    "address",
    [
        "ray://127.0.0.1:9",  # the discard port: nothing listens
        "127.0.0.1:9",  # a head's GCS address, the same
        "192.0.2.1:6379",  # TEST-NET-1: nothing answers at all
    ],
)
def test_unreachable_addresses_fail_in_seconds(address):
    pytest.importorskip("ray")
    from edge_backbones.report.cluster import connect

    started = time.monotonic()
    with pytest.raises(ClusterError) as caught:
        connect(address)
    assert time.monotonic() - started < 10
    assert repr(address) in str(caught.value)
    assert "ray start --head" in str(caught.value)


def test_a_node_that_cannot_load_the_artifact_fails_the_row_with_its_error():
    # an artifact of a schema this node's LiteRT does not read: the row
    # task returns the node's typed error (the driver never sees the
    # node's stderr), not a lost worker that Ray would retry
    from edge_backbones.report.cluster import _row_task

    job = {"kind": "tflite", "threads": 1, "runs": 1, "warmup": 0}
    newer = b"\x1c\x00\x00\x00TFL3" + bytes(200)  # schema version 0
    result = _row_task(job, "newer.tflite", newer)
    assert set(result) == {"error"}
    error = result["error"]
    assert "ModelFileError: The " in error and "cannot load" in error
    assert "newer.tflite" in error and "export again" in error
