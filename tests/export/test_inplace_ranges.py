"""The calibrator's in-place ADD ranges, re-measured (export.inplace_ranges).

A residual `x + fc(x)` whose sum feeds another op: TFLite's calibrator logs
the FULLY_CONNECTED output with the ADD's range (the ADD writes into its
buffer). The fix must give the FC output its own range, as a float run
measures it, and leave the other tensors alone.
"""

import numpy as np
import pytest

from edge_backbones.exporter.convert import Converter

tf = pytest.importorskip("tensorflow")

_RNG = np.random.default_rng(0)
_SMALL = _RNG.standard_normal((16, 16)).astype(np.float32) * 0.01
_SAMPLES = [
    _RNG.standard_normal((1, 8, 16)).astype(np.float32) * 3 for _ in range(6)
]


class _Residual(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([1, 8, 16], tf.float32)])
    def __call__(self, x):
        branch = tf.tensordot(x, _SMALL, 1)
        return (x + branch) * 0.5


def _dataset():
    for sample in _SAMPLES:
        yield [sample]


def _calibrated():
    module = _Residual()
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [module.__call__.get_concrete_function()], module
    )
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = _dataset
    converter._experimental_calibrate_only = True
    return converter.convert()


def _ranges(content):
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    return {
        t.name.decode(): (
            float(t.quantization.min[0]),
            float(t.quantization.max[0]),
        )
        for t in model.subgraphs[0].tensors
        if t.quantization is not None and t.quantization.min is not None
    }


def test_fc_output_gets_its_own_range():
    from edge_backbones.exporter.inplace_ranges import remeasure_tied_ranges

    calibrated = _calibrated()
    before = _ranges(calibrated)
    (branch,) = [
        n for n in before if n.startswith("Tensordot") and "MatMul" not in n
    ]
    (residual,) = [n for n in before if n.startswith("add")]
    # the calibrator's bug, as found in MiT's fc2: the FC logged as the ADD
    assert before[branch] == before[residual]
    after = _ranges(remeasure_tied_ranges(calibrated, _dataset))
    values = np.concatenate([(s @ _SMALL).ravel() for s in _SAMPLES])
    assert after[branch] == pytest.approx(
        (values.min(), values.max()), rel=1e-4
    )
    assert after[residual] == before[residual]
    assert abs(after[branch][1]) < 0.2 * abs(before[residual][1])


def test_converter_calibrates_the_branch_on_its_own_range(tmp_path):
    module = _Residual()
    saved = str(tmp_path / "saved_model")
    tf.saved_model.save(
        module, saved, signatures={"serving_default": module.__call__}
    )
    converter = Converter(saved, _dataset, log=lambda line: None)
    ranges = _ranges(converter.calibrated_model())
    branch = [n for n in ranges if "Tensordot" in n and "MatMul" not in n]
    values = np.concatenate([(s @ _SMALL).ravel() for s in _SAMPLES])
    assert [ranges[n] for n in branch] == [
        pytest.approx((values.min(), values.max()), rel=1e-4)
    ]
