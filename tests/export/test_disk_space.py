"""An export's files against the free disk space: refused up front with the
space needed and free, and a write that still runs out of space is the same
typed error, with the previous artifact intact and no work folder left."""

import collections
import errno
import os
import subprocess

import pytest

from edge_backbones.errors import DiskSpaceError
from edge_backbones.exporter import disk, graph
from edge_backbones.exporter.pipeline import export
from tests.tiny import SIZE

STEM = f"tiny_backbone_{SIZE}x{SIZE}_fp32"
Usage = collections.namedtuple("Usage", "total used free")


def _state(folder):
    """Every file under `folder` with its bytes (work folders included)."""
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, folder)] = f.read()
    return found


def test_estimate_scales_with_weights_and_graphs():
    plans = [object(), object()]
    one = disk.estimate(1_000_000, plans, 0)
    two = disk.estimate(1_000_000, plans, 1)
    # a second SavedModel adds its 4 MB of float32 weights (x overhead)
    assert two["scratch"] - one["scratch"] == pytest.approx(
        4e6 * disk.SAVED_MODEL_OVERHEAD, rel=1e-6
    )
    assert one["out"] > 2 * 4e6  # two artifacts of up to fp32 size


def test_refused_before_work_names_folder_need_and_free(
    tiny_backbone, tmp_path, monkeypatch
):
    monkeypatch.setattr(
        disk.shutil, "disk_usage", lambda path: Usage(10**9, 0, 1000)
    )
    traced = []
    monkeypatch.setattr(graph, "write_saved_model", lambda *a: traced.append(a))
    with pytest.raises(DiskSpaceError) as caught:
        export(tiny_backbone, image_size=SIZE, modes="fp32", out=tmp_path)
    message = str(caught.value)
    assert repr(str(tmp_path)) in message
    assert "0 MB is free" in message and "--work-dir" in message
    needed = sum(disk.estimate(tiny_backbone.count_params(), [0], 0).values())
    assert f"about {needed / 2**20:.0f} MB" in message
    assert not traced  # refused before the graph was traced
    assert os.listdir(tmp_path) == []


def test_late_enospc_is_typed_and_keeps_previous_artifact(
    tiny_backbone, tmp_path, monkeypatch
):
    export(tiny_backbone, image_size=SIZE, modes="fp32", out=tmp_path)
    before = _state(tmp_path)
    assert f"{STEM}.tflite" in before

    class ResourceExhaustedError(Exception):  # as TensorFlow's SaveV2
        pass

    def full(*args):
        raise ResourceExhaustedError(
            "saved_model/variables/variables_temp/part-00000-of-00001"
            ".data-00000-of-00001.tempstate; No space left on device"
        )

    monkeypatch.setattr(graph, "write_saved_model", full)
    with pytest.raises(DiskSpaceError) as caught:
        export(tiny_backbone, image_size=SIZE, modes="fp32", out=tmp_path)
    assert "ran out of space" in str(caught.value)
    assert "--work-dir" in str(caught.value)
    assert _state(tmp_path) == before  # no work folder, same bytes


def test_enospc_from_a_plain_write_is_typed(tiny_backbone, tmp_path):
    exc = OSError(errno.ENOSPC, "No space left on device")
    error = disk.as_disk_space_error(exc, str(tmp_path))
    assert isinstance(error, DiskSpaceError) and str(tmp_path) in str(error)
    assert disk.as_disk_space_error(OSError(errno.EACCES, "x"), "f") is None
    assert disk.as_disk_space_error(ValueError("No space left"), "f") is None


def test_work_dir_holds_the_saved_model(tiny_backbone, tmp_path, monkeypatch):
    out, work_dir = tmp_path / "out", tmp_path / "scratch"
    traced = []
    write = graph.write_saved_model

    def spy(model, path):
        traced.append(path)
        return write(model, path)

    monkeypatch.setattr(graph, "write_saved_model", spy)
    (record,) = export(
        tiny_backbone,
        image_size=SIZE,
        modes="fp32",
        out=out,
        work_dir=work_dir,
    )
    assert os.path.dirname(os.path.dirname(traced[0])) == str(work_dir)
    assert os.path.isfile(record.path)
    assert os.listdir(work_dir) == []  # its work folder is removed


@pytest.fixture
def small_tmpfs(tmp_path):
    """An 8 MB tmpfs (root only; skipped elsewhere)."""
    folder = tmp_path / "tmpfs"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.decode()}")
    yield folder
    subprocess.run(["umount", str(folder)], check=False)


def test_nearly_full_tmpfs(tiny_backbone, small_tmpfs, tmp_path, monkeypatch):
    """A real ENOSPC: the up-front check is bypassed (an estimate can be
    wrong, or another process fills the disk), so the write itself fails."""
    export(tiny_backbone, image_size=SIZE, modes="fp32", out=small_tmpfs)
    before = _state(small_tmpfs)
    filler = small_tmpfs / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    with pytest.raises(OSError):
        while True:
            os.write(fd, b"\0" * 4096)
    os.close(fd)
    # leave a few pages: enough to start, not enough for a SavedModel
    os.truncate(filler, os.path.getsize(filler) - 8 * 4096)
    before["filler"] = open(filler, "rb").read()
    monkeypatch.setattr(disk, "check_free", lambda *a: None)
    with pytest.raises(DiskSpaceError, match="ran out of space"):
        export(tiny_backbone, image_size=SIZE, modes="fp32", out=small_tmpfs)
    assert _state(small_tmpfs) == before
    # with the scratch files elsewhere, the same export goes through
    os.truncate(filler, os.path.getsize(filler) - 64 * 4096)
    export(
        tiny_backbone,
        image_size=SIZE,
        modes="fp32",
        out=small_tmpfs,
        work_dir=tmp_path / "scratch",
    )
