"""Activation ranges by min/max, percentile and MSE on a small float graph."""

import numpy as np
import pytest

from edge_backbones.errors import InputError
from edge_backbones.exporter.calibration_ranges import (
    activation_ranges,
    parse_method,
)


@pytest.fixture(scope="module")
def graph():
    """A float .tflite: x -> x * 2 (one MUL), and inputs with 1 outlier."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec((1, 4096), tf.float32)])
    def double(x):
        return {"y": x * 2.0}

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [double.get_concrete_function()], double
    )
    content = converter.convert()
    rng = np.random.default_rng(0)
    samples = [rng.normal(0, 1, (1, 4096)).astype(np.float32) for _ in range(4)]
    samples[0][0, 0] = 40.0  # one value in 16384
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content)
    names = [d["name"] for d in interpreter.get_tensor_details()]
    (entry,) = interpreter.get_input_details()
    (out,) = interpreter.get_output_details()
    return content, samples, names, entry["name"], out["name"]


def test_minmax_is_the_exact_range(graph):
    content, samples, names, x, y = graph
    ranges = activation_ranges(content, samples, names, "minmax")
    low = min(float(s.min()) for s in samples)
    assert ranges[y] == pytest.approx((2 * low, 80.0))


def test_percentile_clips_the_outlier_but_not_the_input(graph):
    content, samples, names, x, y = graph
    ranges = activation_ranges(content, samples, names, "percentile:99.9")
    # the output's range drops the single 80 (2 * 40): ~2 * 3.3 sigma
    assert 5.0 < ranges[y][1] < 8.0
    # the graph input keeps its exact range (uint8 pixels map one to one)
    assert ranges[x][1] == pytest.approx(40.0)


def _int8_error(values, low, high):
    step = (high - low) / 255
    grid = np.round((np.clip(values, low, high) - low) / step)
    return float(np.mean((grid * step + low - values) ** 2))


def test_mse_range_has_less_int8_error_than_minmax(graph):
    content, samples, names, x, y = graph
    values = np.concatenate([2 * s.ravel() for s in samples])
    mse = activation_ranges(content, samples, names, "mse")[y]
    minmax = activation_ranges(content, samples, names, "minmax")[y]
    assert mse[1] <= minmax[1]
    assert _int8_error(values, *mse) <= _int8_error(values, *minmax)
    # without the outlier, clipping the Gaussian's tails wins
    tails = activation_ranges(content, samples[1:], names, "mse")[y]
    exact = activation_ranges(content, samples[1:], names, "minmax")[y]
    clean = values[4096:]
    assert tails[1] < exact[1]
    assert _int8_error(clean, *tails) < _int8_error(clean, *exact)


@pytest.mark.parametrize("method", ["percentile", "percentile:50", "max", 3])
def test_unknown_method_is_a_typed_error(method):
    with pytest.raises(InputError, match="percentile:99.99"):
        parse_method(method)
