"""A real family through `export()`: a small ViTDet (tests/tiny.py:
`TINY_VITDET_EXPORT`, windowed and global attention, position tables) in
fp32, the cpu target and full int8, each checked against the Keras float
model on the bundled photos."""

import numpy as np
import pytest

from edge_backbones.core.fidelity import cosine
from edge_backbones.exporter.pipeline import export
from edge_backbones.runtime.edge_model import EdgeModel
from edge_backbones.runtime.preprocess import preprocess
from tests.tflite_ops import operators

pytestmark = pytest.mark.matrix_stage

SIZE = 32
# the export's default gates (measured here: fp32 1.0, cpu 0.99995 with
# int8 weights, int8 0.9992)
MIN_COSINE = {"fp32": 0.9999, "cpu": 0.999, "int8": 0.98}


@pytest.fixture(scope="module")
def vit_det(calibration_dir, tmp_path_factory):
    """(the Keras model, {mode: ArtifactRecord})."""
    import keras

    from edge_backbones.models.vit_det import ViTDetBackbone
    from tests.tiny import TINY_VITDET_EXPORT

    keras.utils.set_random_seed(0)
    backbone = ViTDetBackbone(**TINY_VITDET_EXPORT, name="tiny_vit_det")
    rng = np.random.default_rng(0)
    for variable in backbone.weights:  # zero position tables would fold
        variable.assign(
            rng.normal(scale=0.3, size=variable.shape).astype("float32")
        )
    records = export(
        backbone,
        image_size=SIZE,
        modes="fp32,int8",
        targets="cpu",
        calibration=calibration_dir,
        out=tmp_path_factory.mktemp("vit_det"),
        max_images=16,
    )
    return backbone, {r.mode: r for r in records}


def test_every_mode_meets_its_gate(vit_det):
    _, records = vit_det
    assert sorted(records) == ["cpu", "fp32", "int8"]
    for mode, record in records.items():
        (level,) = record.fidelity["levels"]  # ViTDet: one level
        assert level == "P3"
        figures = record.fidelity["levels"][level]
        assert figures["cosine"] >= MIN_COSINE[mode], (mode, figures)
    cosine = {
        mode: record.fidelity["levels"]["P3"]["cosine"]
        for mode, record in records.items()
    }
    # less quantization, closer to float
    assert cosine["fp32"] >= cosine["cpu"] > cosine["int8"]


def test_artifacts_compute_the_keras_model(vit_det, calibration_dir):
    """Independently of the export's own gate: each artifact on photos it
    did not calibrate on, against the Keras model on the same input."""
    backbone, records = vit_det
    extractor = backbone.feature_extractor()
    photos = sorted(calibration_dir.glob("*.jpg"))[-3:]
    for mode, record in records.items():
        model = EdgeModel(record.path, num_threads=1)
        for photo in photos:
            x = preprocess(str(photo), backbone.preprocessing, (SIZE, SIZE))
            expected = np.asarray(extractor(x[None])["P3"])
            got = model(x)["P3"]
            assert got.shape == expected.shape == (1, 4, 4, 32)
            similarity = cosine(got, expected)
            assert similarity >= MIN_COSINE[mode], (
                mode,
                photo.name,
                similarity,
            )


def test_int8_runs_the_attention_in_int8(vit_det):
    _, records = vit_det
    ops = operators(records["int8"].path)
    kinds = {op.name for op in ops}
    assert "L2_NORMALIZATION" in kinds  # the integer layer-norm form
    for op in ops:
        if op.name in ("FULLY_CONNECTED", "BATCH_MATMUL", "SOFTMAX"):
            assert op.output_type == "INT8", op
