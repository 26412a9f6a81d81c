"""Atomic writes leave the old file or folder in place when a write fails."""

import os

import pytest

from edge_backbones.atomic_io import staged_directory, write_file_atomic


def test_file_replaced_whole_and_no_temp_left(tmp_path):
    path = tmp_path / "out.json"
    write_file_atomic(path, "old")
    write_file_atomic(path, b"new")
    assert path.read_text() == "new"
    assert os.listdir(tmp_path) == ["out.json"]
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~_umask()


def test_failed_rename_leaves_no_temp_file(tmp_path):
    target = tmp_path / "taken"
    target.mkdir()  # a file cannot replace a folder
    (target / "inside").write_text("")
    with pytest.raises(OSError):
        write_file_atomic(target, "data")
    assert os.listdir(tmp_path) == ["taken"]


def test_failed_directory_write_keeps_the_old_one(tmp_path):
    path = tmp_path / "saved_model"
    with staged_directory(path) as staging:
        open(os.path.join(staging, "v1"), "w").close()
    with pytest.raises(RuntimeError):
        with staged_directory(path) as staging:
            open(os.path.join(staging, "v2"), "w").close()
            raise RuntimeError("interrupted")
    assert os.listdir(path) == ["v1"]
    assert os.listdir(tmp_path) == ["saved_model"]


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
