"""The two-convolution .tflite models of tests/tiny.py, built once per
session, with and without metadata, plus the Keras reference outputs.

Metadata is embedded with LiteRT's TF-free flatbuffer_utils, following the
file-format contract only.
"""

import numpy as np
import pytest

from tests.tiny import (
    SIZE,
    convert_two_conv,
    make_metadata,
    two_conv_model,
    write_with_metadata,
)


def gpu_fallback(model_path):
    """EdgeModel with delegates ("gpu", "xnnpack"), and its fallback warnings.

    Callers assert the GPU fell back to XNNPACK with exactly one warning.
    """
    import warnings

    from edge_backbones.runtime import DelegateFallbackWarning, EdgeModel

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = EdgeModel(model_path, delegates=("gpu", "xnnpack"))
    fallbacks = [
        str(w.message)
        for w in caught
        if issubclass(w.category, DelegateFallbackWarning)
    ]
    return model, fallbacks


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """Paths of the tiny models plus the Keras reference outputs."""
    import tensorflow as tf

    from edge_backbones.exporter.graph import write_saved_model

    folder = tmp_path_factory.mktemp("tiny")
    model = two_conv_model()
    saved = write_saved_model(model, str(folder / "saved_model"))
    contents = {
        "f32": convert_two_conv(saved),
        "int8": convert_two_conv(saved, tf.int8),
        "uint8": convert_two_conv(saved, tf.uint8),
    }
    paths = {}
    for key, content in contents.items():
        paths[key] = folder / f"{key}.tflite"
        paths[key].write_bytes(content)
    paths["f32_meta"] = write_with_metadata(
        folder / "f32_meta.tflite", contents["f32"], make_metadata()
    )
    paths["int8_meta"] = write_with_metadata(
        folder / "int8_meta.tflite", contents["int8"], make_metadata("int8")
    )
    x = np.random.default_rng(1).uniform(-2, 2, (1, SIZE, SIZE, 3))
    x = x.astype(np.float32)
    reference = {k: np.asarray(v) for k, v in model(x).items()}
    return {"paths": paths, "contents": contents, "x": x, "ref": reference}
