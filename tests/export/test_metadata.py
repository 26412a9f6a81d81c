"""Embedding, sidecar and atomic writes."""

import json
import os

import pytest

from edge_backbones.exporter import tflite_metadata
from edge_backbones.runtime.metadata import content_sha256, digest_span
from edge_backbones.runtime.model_file import read_model_file
from tests.models.backbone_harness import float_tflite
from tests.tiny import make_metadata


def _metadata(mode):
    """Complete metadata (the writer checks it) of mode `mode`."""
    return {**make_metadata(), "mode": mode}


@pytest.fixture(scope="module")
def model_content(tiny_backbone):
    return float_tflite(tiny_backbone, (32, 32))


def test_embed_is_readable_without_tensorflow_and_idempotent(model_content):
    first = tflite_metadata.embed_metadata(model_content, {"a": 1})
    second = tflite_metadata.embed_metadata(first, {"a": 2, "b": "é"})
    parsed = read_model_file(second)
    meta = json.loads(parsed.metadata["edge_backbones"])
    # the content digest goes first, and is the file's (digits as zeros)
    assert list(meta)[0] == "content_sha256"
    span = digest_span(parsed)
    assert meta.pop("content_sha256") == content_sha256(second, span)
    assert meta == {"a": 2, "b": "é"}
    # the converter's own entries survive; ours appears once
    names = list(parsed.metadata)
    assert names.count("edge_backbones") == 1
    assert set(read_model_file(model_content).metadata) <= set(names)
    assert parsed.op_histogram == read_model_file(model_content).op_histogram
    # the replaced payload is gone: embedding again does not grow the file
    third = tflite_metadata.embed_metadata(second, {"a": 2, "b": "é"})
    assert len(third) == len(second)


def test_write_artifact_and_sidecar(model_content, tmp_path):
    path = str(tmp_path / "m.tflite")
    size = tflite_metadata.write_artifact(path, model_content, _metadata("x"))
    assert os.path.getsize(path) == size
    with open(tmp_path / "m.json") as f:
        sidecar = json.load(f)
    assert sidecar["mode"] == "x" and sidecar["size_bytes"] == size
    assert sorted(os.listdir(tmp_path)) == ["m.json", "m.tflite"]
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask


def test_interrupted_write_keeps_the_good_artifact(
    model_content, tmp_path, monkeypatch
):
    path = str(tmp_path / "m.tflite")
    tflite_metadata.write_artifact(path, model_content, _metadata("good"))
    before = sorted(os.listdir(tmp_path)), open(path, "rb").read()
    real_dumps = tflite_metadata.dumps_json

    def dumps_then_die(obj, **kwargs):
        if "sha256" in obj:  # the sidecar: after the model's temp file
            raise KeyboardInterrupt
        return real_dumps(obj, **kwargs)

    monkeypatch.setattr(tflite_metadata, "dumps_json", dumps_then_die)
    with pytest.raises(KeyboardInterrupt):
        tflite_metadata.write_artifact(path, model_content, _metadata("bad"))
    after = sorted(os.listdir(tmp_path)), open(path, "rb").read()
    assert after == before  # no temp file left, same bytes
    meta = json.loads(read_model_file(path).metadata["edge_backbones"])
    assert meta["mode"] == "good"


def test_failed_move_leaves_no_temp_file(model_content, tmp_path, monkeypatch):
    path = str(tmp_path / "m.tflite")

    def refuse(src, dst):
        raise PermissionError(f"cannot replace {dst}")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(PermissionError):
        tflite_metadata.write_artifact(path, model_content, _metadata("x"))
    assert os.listdir(tmp_path) == []


def test_one_time_stamp_for_artifacts_and_reports():
    import datetime

    from edge_backbones.report import records
    from edge_backbones.runtime import metadata

    # one definition: the exporter and the report write the same format
    assert tflite_metadata.utc_now is metadata.utc_now
    assert records.utc_now is metadata.utc_now
    stamp = metadata.utc_now()
    parsed = datetime.datetime.fromisoformat(stamp)  # Python 3.10 too
    assert parsed.utcoffset() == datetime.timedelta(0)
    assert parsed.microsecond == 0 and stamp.endswith("+00:00")
