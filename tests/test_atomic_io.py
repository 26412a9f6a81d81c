"""Atomic writes leave the old file or folder in place when a write fails."""

import os
import pathlib
import re

import pytest

import edge_backbones
from edge_backbones.atomic_io import (
    dumps_json,
    loads_json_strict,
    staged_directory,
    write_file_atomic,
    write_json_atomic,
)


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


def test_json_is_strict(tmp_path):
    with pytest.raises(ValueError, match=r"\$\.levels\.P1\.sqnr_db"):
        dumps_json({"levels": {"P1": {"sqnr_db": float("inf")}}})
    with pytest.raises(ValueError, match=r"\$\[1\]"):
        write_json_atomic(tmp_path / "x.json", [1.0, float("nan")])
    assert not (tmp_path / "x.json").exists()
    with pytest.raises(ValueError, match="Infinity is not strict JSON"):
        loads_json_strict('{"a": Infinity}')
    assert loads_json_strict(dumps_json({"a": [1.5, None]})) == {
        "a": [1.5, None]
    }


def test_every_json_writer_goes_through_dumps_json():
    # json.dump(s) elsewhere would let NaN/Infinity out again
    package = pathlib.Path(edge_backbones.__file__).parent
    offenders = []
    for path in package.rglob("*.py"):
        if path.name == "atomic_io.py":
            continue
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines, 1):
            if re.search(r"\bjson\.dumps?\(", line):
                context = lines[number - 1 : number + 12]
                if not any("allow_nan=False" in c for c in context):
                    offenders.append(f"{path.relative_to(package)}:{number}")
    assert offenders == []
