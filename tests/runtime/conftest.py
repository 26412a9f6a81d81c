"""Tiny .tflite models built once per session, with and without metadata.

The models are two strided convolutions with named outputs (P1 stride 2,
P2 stride 4), converted like the exporter does (SavedModel with a
`serving_default` signature -> TFLiteConverter), in float32 and in full int8
with int8 and uint8 I/O. Metadata is embedded with LiteRT's TF-free
flatbuffer_utils, following the file-format contract only.
"""

import copy
import json

import numpy as np
import pytest

SIZE = 32
PREPROCESSING = {
    "color_order": "RGB",
    "resize": "stretch",
    "interpolation": "linear",
    "pixels_in_graph": False,
    "scale": 1.0 / 255.0,
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
}


def _keras_model():
    import keras

    keras.utils.set_random_seed(0)
    images = keras.Input((SIZE, SIZE, 3), batch_size=1, name="images")
    p1 = keras.layers.Conv2D(8, 3, 2, "same", activation="relu")(images)
    p2 = keras.layers.Conv2D(16, 3, 2, "same")(p1)
    # the dict order is the reverse of the level order on purpose
    return keras.Model(images, {"P2": p2, "P1": p1})


def _convert(saved_model, io_type=None):
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
    if io_type is not None:
        rng = np.random.default_rng(0)

        def representative():
            for _ in range(16):
                x = rng.uniform(-2.2, 2.7, (1, SIZE, SIZE, 3))
                yield {"images": x.astype(np.float32)}

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS_INT8
        ]
        converter.inference_input_type = io_type
        converter.inference_output_type = io_type
    return converter.convert()


def embed(model_content, payload, name="edge_backbones"):
    """`model_content` with `payload` (bytes) as metadata entry `name`."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(model_content)
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(payload, np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = name
    entry.buffer = len(model.buffers) - 1
    model.metadata = [*(model.metadata or []), entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def make_metadata(input_dtype="float32", preprocessing=None):
    return {
        "schema": "edge_backbones.tflite/1",
        "model": {"name": "tiny", "class_name": "Tiny", "weights": "random"},
        "mode": "fp32" if input_dtype == "float32" else "int8_io",
        "recipe": None,
        "input": {
            "name": "images",
            "shape": [1, SIZE, SIZE, 3],
            "dtype": input_dtype,
            "quantization": None,
            "preprocessing": copy.deepcopy(preprocessing or PREPROCESSING),
        },
        "outputs": {
            "P1": {"shape": [1, 16, 16, 8], "stride": 2, "channels": 8},
            "P2": {"shape": [1, 8, 8, 16], "stride": 4, "channels": 16},
        },
    }


def write_with_metadata(path, model_content, metadata):
    path.write_bytes(embed(model_content, json.dumps(metadata).encode()))
    return path


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

    from edge_backbones.export.graph import write_saved_model

    folder = tmp_path_factory.mktemp("tiny")
    model = _keras_model()
    saved = write_saved_model(model, str(folder / "saved_model"))
    contents = {
        "f32": _convert(saved),
        "int8": _convert(saved, tf.int8),
        "uint8": _convert(saved, tf.uint8),
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
