"""Checks every backbone family must pass, so each test file stays short.

- `run_backbone_test`: pyramid shapes agree with `feature_info`, level
  selection, config round trip.
- `run_model_saving_test`: `.keras` and preset-folder round trips give the
  same outputs.
- `run_edge_graph_test`: the float .tflite is static, rank <= 4, builtins
  only, GPU-compatible and numerically the Keras model; the export's own
  converter (`export.convert.Converter`) makes an int16x8 graph of it that
  stays close to the Keras model.
"""

import contextlib
import io
import os
import tempfile

import keras
import numpy as np

from edge_backbones.core.fidelity import cosine
from edge_backbones.exporter.graph import (
    INPUT_NAME,
    serving_model,
    write_saved_model,
)
from edge_backbones.runtime.model_file import read_model_file

# Ops that only exist to compute shapes at run time; a static graph has none.
SHAPE_PLUMBING_OPS = ("SHAPE", "GATHER", "REDUCE_PROD", "PACK", "UNPACK")


def _as_numpy(tree):
    return {k: keras.ops.convert_to_numpy(v) for k, v in tree.items()}


def run_backbone_test(cls, init_kwargs, input_data):
    """Builds `cls`, runs `input_data`, checks the pyramid contract."""
    backbone = cls(**init_kwargs)
    features = _as_numpy(backbone.feature_extractor()(input_data))
    batch, height, width = input_data.shape[:3]
    names = [info.name for info in backbone.feature_info]
    assert list(features) == names == list(backbone.pyramid_outputs)
    for info in backbone.feature_info:
        expected = (
            batch,
            -(-height // info.stride),
            -(-width // info.stride),
            info.channels,
        )
        assert features[info.name].shape == expected, (info, expected)
    # The model's own output is the deepest level.
    deepest = keras.ops.convert_to_numpy(backbone(input_data))
    np.testing.assert_allclose(deepest, features[names[-1]], atol=1e-5)
    # Level selection, both spellings.
    deepest_only = backbone.feature_extractor(out_indices=[-1])
    assert list(deepest_only.output) == names[-1:]
    assert backbone.select_features(out_features=[names[0]]) == [names[0]]
    # Config round trip.
    config = backbone.get_config()
    restored = cls.from_config(config)
    assert restored.get_config() == config
    return backbone, features


def run_model_saving_test(cls, init_kwargs, input_data, tmp_path):
    """Saves and reloads as `.keras` and as a preset folder."""
    backbone = cls(**init_kwargs)
    expected = _as_numpy(backbone.feature_extractor()(input_data))
    path = os.path.join(tmp_path, "model.keras")
    backbone.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is type(backbone)
    got = _as_numpy(loaded.feature_extractor()(input_data))
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value, atol=1e-6)
    preset = os.path.join(tmp_path, "preset")
    backbone.save_to_preset(preset)
    reloaded = cls.from_preset(preset)
    got = _as_numpy(reloaded.feature_extractor()(input_data))
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value, atol=1e-6)


def float_tflite(backbone, image_size, out_features=None):
    """The fp32 .tflite bytes of `backbone` at `image_size` (builtins only).

    A plain conversion of the serving graph, with none of export()'s
    checks: a reference for tests that need a float model file.
    """
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="edge-backbones-") as tmp:
        saved = write_saved_model(
            serving_model(backbone, image_size, out_features),
            os.path.join(tmp, "saved_model"),
        )
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        return converter.convert()


def gpu_compatibility_report(tflite_bytes):
    """The TFLite Analyzer's text for the GPU-delegate compatibility check."""
    import tensorflow as tf

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        tf.lite.experimental.Analyzer.analyze(
            model_content=tflite_bytes, gpu_compatibility=True
        )
    return out.getvalue()


def _converter(backbone, image_size, tmp_path, samples, out_features=None):
    """The shipped export converter on `backbone`'s serving SavedModel,
    calibrated on `samples`."""
    from edge_backbones.exporter.convert import Converter

    saved = write_saved_model(
        serving_model(backbone, image_size, out_features),
        os.path.join(tmp_path, "saved_model"),
    )

    def representative():
        for sample in samples:
            yield {INPUT_NAME: sample}

    return Converter(saved, representative, log=lambda line: None)


def run_edge_graph_test(
    backbone, image_size, tmp_path, expect_gelu=True, out_features=None
):
    """Converts `backbone` at batch 1 and `image_size`; checks the graph.

    `out_features` picks the outputs converted (all by default).
    Returns the read float model file (ops, histogram) for extra checks.
    """
    from ai_edge_litert.interpreter import Interpreter

    rng = np.random.default_rng(1)
    samples = [
        rng.normal(size=(1, *image_size, 3)).astype("float32") for _ in range(2)
    ]
    converter = _converter(
        backbone, image_size, tmp_path, samples, out_features
    )
    tflite = converter.fp32()
    model_file = read_model_file(tflite)
    histogram = model_file.op_histogram
    plumbing = {
        op: histogram[op] for op in SHAPE_PLUMBING_OPS if op in histogram
    }
    assert not plumbing, f"shape plumbing left in the graph: {plumbing}"
    assert model_file.max_tensor_rank <= 4, model_file.max_tensor_rank
    custom = [op for op in histogram if op.startswith(("CUSTOM", "FLEX"))]
    assert not custom, custom
    assert "NEG" not in histogram and "SQUARED_DIFFERENCE" not in histogram
    if expect_gelu:
        assert histogram.get("GELU", 0) > 0, histogram
    report = gpu_compatibility_report(tflite)
    assert "looks compatible with GPU delegate" in report, report
    assert "COMPATIBILITY WARNING" not in report, report

    # The float .tflite computes what the Keras model computes.
    sample = samples[0]
    extractor = backbone.feature_extractor(out_features=out_features)
    expected = _as_numpy(extractor(sample))
    runner = Interpreter(model_content=tflite).get_signature_runner()
    got = runner(**{INPUT_NAME: sample})
    assert set(got) == set(expected)
    for name, value in expected.items():
        scale = float(np.abs(value).max()) + 1e-6
        np.testing.assert_allclose(got[name], value, atol=1e-4 * scale)

    # the export's own int16x8 conversion takes the graph, and computes it
    # (on an input it calibrated on: random weights and inputs leave no
    # margin for ranges it did not see)
    int16x8 = converter.int16x8()
    assert "int16" in read_model_file(int16x8).tensor_types
    runner = Interpreter(model_content=int16x8).get_signature_runner()
    got = runner(**{INPUT_NAME: sample})
    for name, value in expected.items():
        assert cosine(got[name], value) > 0.999, name
    return model_file
