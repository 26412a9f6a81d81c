"""NPU fixtures: a tiny `npu` artifact and the skip for a missing extra.

Tests that compile or simulate need the `npu` extra (onnxruntime-qnn,
openvino, onnx); without it they skip saying so. `.ci/stages/npu.sh`
installs the extra and runs them, plus the `npu_stage` checks on real
backbones.
"""

import importlib.util

import pytest

_NPU_MODULES = ("onnxruntime_qnn", "openvino", "onnx", "onnxruntime")
MISSING = [m for m in _NPU_MODULES if importlib.util.find_spec(m) is None]

needs_npu_extra = pytest.mark.skipif(
    bool(MISSING),
    reason=f"the npu extra is not installed (missing {MISSING}): "
    'pip install -e ".[npu]", or run .ci/stages/npu.sh',
)


def _tiny_export(target, out, calibration_dir):
    import keras

    from edge_backbones.exporter.pipeline import export
    from tests.tiny import TinyBackbone

    keras.utils.set_random_seed(0)
    (record,) = export(
        TinyBackbone(dim=8, image_shape=(32, 32, 3)),
        image_size=32,
        targets=target,
        calibration=str(calibration_dir),
        out=str(out),
        name="tiny",
        max_images=8,
        # random weights on a toy: only a broken conversion falls this low
        thresholds={target: 0.95},
    )
    return record.path


@pytest.fixture(scope="session")
def tiny_npu(tmp_path_factory, calibration_dir):
    """A tiny backbone exported as a verified `npu` artifact (a16w8)."""
    out = tmp_path_factory.mktemp("tiny_npu")
    return _tiny_export("npu", out, calibration_dir)


@pytest.fixture(scope="session")
def tiny_npu_int8(tmp_path_factory, calibration_dir):
    """The same backbone as an `npu_int8` artifact (full int8)."""
    out = tmp_path_factory.mktemp("tiny_npu_int8")
    return _tiny_export("npu_int8", out, calibration_dir)
