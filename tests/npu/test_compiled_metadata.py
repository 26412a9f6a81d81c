"""Metadata of a compiled file: reserved before the compile, patched after."""

import json

import numpy as np
import pytest

from edge_backbones.errors import MetadataError
from edge_backbones.npu.compile import patch_metadata, with_reserved_metadata
from edge_backbones.runtime.metadata import read_metadata
from edge_backbones.runtime.model_file import metadata_spans, read_model_file


@pytest.fixture(scope="module")
def model_content(tmp_path_factory):
    import keras
    import tensorflow as tf

    images = keras.Input((8, 8, 3), batch_size=1, name="images")
    model = keras.Model(images, keras.layers.Conv2D(4, 3)(images))
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


META = {
    "schema": "edge_backbones.tflite/2",
    "input": {"name": "images"},
    "outputs": {},
    "compiled": {"soc": "SM8650"},
}


def test_the_payload_is_rewritten_in_place(model_content):
    reserved = with_reserved_metadata(model_content, META, reserve=4096)
    spans_before = metadata_spans(reserved)
    final = {**META, "compiled": {"soc": "SM8650", "ops_on_npu": 386}}
    patched = patch_metadata(reserved, final)
    # same size, same offsets: bytes after the FlatBuffer (NPU bytecode in
    # a compiled model) stay where their offsets say
    assert len(patched) == len(reserved)
    assert metadata_spans(patched) == spans_before
    parsed = read_model_file(patched)
    assert read_metadata("x.tflite", parsed) == final
    # strict JSON: the padding is whitespace only
    json.loads(parsed.metadata["edge_backbones"].decode())
    assert parsed.ops == read_model_file(model_content).ops
    # a shorter payload later (update_metadata) leaves nothing of the longer
    shorter = patch_metadata(patched, META)
    assert read_metadata("x.tflite", read_model_file(shorter)) == META


def test_metadata_larger_than_the_reservation_is_refused(model_content):
    reserved = with_reserved_metadata(model_content, META, reserve=16)
    big = {**META, "compiled": {"notes": "x" * 100}}
    with pytest.raises(MetadataError, match="reserved"):
        patch_metadata(reserved, big)


def test_nan_never_reaches_the_file(model_content):
    reserved = with_reserved_metadata(model_content, META, reserve=4096)
    with pytest.raises(ValueError):
        patch_metadata(reserved, {**META, "compiled": {"cos": np.nan}})
