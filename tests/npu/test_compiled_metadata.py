"""Metadata of a compiled file: reserved before the compile, patched after."""

import json

import numpy as np
import pytest

from edge_backbones.errors import IntegrityError, MetadataError
from edge_backbones.npu.compile import patch_metadata, with_reserved_metadata
from edge_backbones.runtime.metadata import DIGEST_KEY, read_metadata
from edge_backbones.runtime.model_file import read_model_file
from tests.tiny import make_metadata


@pytest.fixture(scope="module")
def model_content(tmp_path_factory):
    import keras
    import tensorflow as tf

    images = keras.Input((8, 8, 3), batch_size=1, name="images")
    model = keras.Model(images, keras.layers.Conv2D(4, 3)(images))
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


COMPILED = {
    "soc": "SM8650",
    "vendor": "Qualcomm",
    "accelerator": "QNN HTP",
    "x86_run": "simulator",
    "plugin": {"ai_edge_litert": "2.3.0"},
    "sdk": {"qairt": "2.51.0"},
    "partitions": [
        {"subgraph": 0, "ops_on_npu": 1, "ops_total": 1, "partitions": 1}
    ],
    "cpu_op_kinds": {},
    "compile_seconds": 0.5,
    "source": {"file": "tiny_npu.tflite", "sha256": "0" * 64,
               "fidelity_cpu": None},
}  # fmt: skip
# complete, as the compiler writes it (artifact.schema.json)
META = {
    **make_metadata(),
    "schema": "edge_backbones.tflite/2",
    "fidelity": None,
    "compiled": COMPILED,
}


def _read(tmp_path, content):
    path = tmp_path / "compiled.tflite"
    path.write_bytes(content)
    meta = read_metadata(str(path), read_model_file(str(path)))
    return {k: v for k, v in meta.items() if k != DIGEST_KEY}


def test_the_payload_is_rewritten_in_place(model_content, tmp_path):
    reserved = with_reserved_metadata(model_content, META, reserve=4096)
    spans_before = read_model_file(reserved).metadata_spans
    final = {**META, "compiled": {**COMPILED, "compile_seconds": 386.0}}
    patched = patch_metadata(reserved, final)
    # same size, same offsets: bytes after the FlatBuffer (NPU bytecode in
    # a compiled model) stay where their offsets say
    assert len(patched) == len(reserved)
    parsed = read_model_file(patched)
    assert parsed.metadata_spans == spans_before
    assert _read(tmp_path, patched) == final
    # strict JSON: the padding is whitespace only
    json.loads(parsed.metadata["edge_backbones"].decode())
    assert parsed.ops == read_model_file(model_content).ops
    # a shorter payload later (update_compiled) leaves nothing of the longer
    assert _read(tmp_path, patch_metadata(patched, META)) == META


def test_the_recorded_digest_catches_a_changed_byte(model_content, tmp_path):
    patched = patch_metadata(
        with_reserved_metadata(model_content, META, reserve=4096), META
    )
    damaged = bytearray(patched)
    damaged[-1] ^= 1  # a weight byte, far from the metadata
    with pytest.raises(IntegrityError, match="hashes to"):
        _read(tmp_path, bytes(damaged))


def test_metadata_larger_than_the_reservation_is_refused(model_content):
    reserved = with_reserved_metadata(model_content, META, reserve=16)
    big = {**META, "compiled": {**COMPILED, "soc": "x" * 100}}
    with pytest.raises(MetadataError, match="reserved"):
        patch_metadata(reserved, big)


def test_nan_never_reaches_the_file(model_content):
    reserved = with_reserved_metadata(model_content, META, reserve=4096)
    with pytest.raises(ValueError):
        patch_metadata(
            reserved,
            {**META, "compiled": {**COMPILED, "compile_seconds": np.nan}},
        )
