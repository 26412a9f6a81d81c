"""Tiny .tflite artifacts for the hostile-input suites (not a conftest: the
fixtures stay local to each test file).

The tests/runtime two-convolution model (32x32 in, P1 and P2 out), with
our metadata embedded by the exporter's own `embed_metadata`, so each file
records its content sha256 exactly as an export does.
"""

import json
import os

from tests.runtime import conftest as runtime_models


def convert_tiny(folder):
    """{"f32", "int8", "uint8": .tflite bytes} of the tiny model."""
    import tensorflow as tf

    from edge_backbones.export.graph import write_saved_model

    saved = write_saved_model(
        runtime_models._keras_model(), os.path.join(folder, "saved_model")
    )
    return {
        "f32": runtime_models._convert(saved),
        "int8": runtime_models._convert(saved, tf.int8),
        "uint8": runtime_models._convert(saved, tf.uint8),
    }


def artifact_metadata(input_dtype="float32", mode=None, fidelity=None):
    """Metadata as the exporter writes it (model, mode, input, outputs)."""
    metadata = runtime_models.make_metadata(input_dtype)
    if mode is not None:
        metadata["mode"] = mode
    metadata["fidelity"] = fidelity or {
        "images": 2,
        "levels": {
            "P1": {"cosine": 0.9991, "sqnr_db": 30.5, "max_abs": 0.01},
            "P2": {"cosine": 0.9995, "sqnr_db": 33.1, "max_abs": 0.02},
        },
    }
    return metadata


def write_artifact(path, content, metadata):
    """Embeds `metadata` (with its content digest) and writes `path`."""
    from edge_backbones.export.tflite_metadata import embed_metadata

    data = embed_metadata(content, metadata)
    with open(path, "wb") as f:
        f.write(data)
    return path


def write_legacy_artifact(path, content, metadata):
    """As exports before the content digest wrote it: plain JSON (which
    then allowed Infinity), no `content_sha256`."""
    payload = json.dumps(metadata).encode()
    with open(path, "wb") as f:
        f.write(runtime_models.embed(content, payload))
    return path


def strip_signatures(content):
    """`content` with its SignatureDefs removed, as some tools leave it."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(content)
    model.signatureDefs = []
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
