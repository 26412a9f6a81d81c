"""Bring your own model: tf-keras and Keras 3 models through export()."""

import json
import os

import keras
import numpy as np
import pytest

from edge_backbones.errors import InputError
from edge_backbones.exporter.foreign_model import ForeignModel
from edge_backbones.exporter.pipeline import export
from edge_backbones.runtime.edge_model import EdgeModel

tf_keras = pytest.importorskip(
    "tf_keras", reason="tf-keras comes with the export extra"
)

SIZE = (64, 64)


@pytest.fixture(scope="module")
def mobilenet():
    """tf-keras MobileNetV3-Small cut at strides 8 and 16: two named levels.

    Its graph rescales 0-255 pixels itself (include_preprocessing), so the
    "raw" preprocessing is the right one.
    """
    tf_keras.utils.set_random_seed(0)
    base = tf_keras.applications.MobileNetV3Small(
        input_shape=(*SIZE, 3),
        weights=None,
        include_top=False,
        minimalistic=True,
    )
    outputs = {
        "P3": base.get_layer("expanded_conv_2/Add").output,
        "P4": base.get_layer("expanded_conv_7/Add").output,
    }
    return tf_keras.Model(base.input, outputs, name="mobilenet_v3_cut")


def _keras3_pyramid(names=("c1", "c2")):
    keras.utils.set_random_seed(0)
    images = keras.Input((None, None, 3))
    x = keras.layers.Rescaling(1 / 255)(images)
    c1 = keras.layers.Conv2D(8, 3, strides=4, padding="same", name=names[0])(x)
    # Keras' own LayerNormalization: the ops our backbones avoid
    x = keras.layers.LayerNormalization()(keras.layers.ReLU()(c1))
    c2 = keras.layers.Conv2D(16, 3, strides=2, padding="same", name=names[1])(x)
    return keras.Model(images, [c1, c2], name="keras3_pyramid")


def _check_runtime(record, expected_levels):
    """Loads the artifact in the runtime; levels come back by name."""
    model = EdgeModel(record.path, num_threads=1)
    x = np.random.default_rng(3).uniform(0, 255, (1, *SIZE, 3))
    out = model(x.astype("float32"))
    assert {n: v.shape for n, v in out.items()} == expected_levels
    with open(os.path.splitext(record.path)[0] + ".json") as f:
        sidecar = json.load(f)
    assert list(sidecar["outputs"]) == list(expected_levels)
    return model, sidecar


@pytest.mark.matrix_stage
def test_tf_keras_model_fp32_cpu_int8(mobilenet, photos, tmp_path):
    records = export(
        mobilenet,
        image_size=SIZE,
        modes="fp32,int8",
        targets="cpu",
        calibration=photos,
        max_images=16,
        out=tmp_path,
    )
    by_mode = {r.mode: r for r in records}
    assert set(by_mode) == {"fp32", "int8", "cpu"}
    levels = {"P3": (1, 8, 8, 24), "P4": (1, 4, 4, 48)}
    for record in records:
        assert os.path.basename(record.path) == (
            f"mobilenet_v3_cut_64x64_{record.mode}.tflite"
        )
        _, sidecar = _check_runtime(record, levels)
        assert sidecar["model"]["config"]["format"] == "tf_keras"
        assert sidecar["outputs"]["P3"]["stride"] == 8
        assert sidecar["outputs"]["P4"]["channels"] == 48
    # fp32 is the tf-keras model itself, checked against it here directly
    x = np.random.default_rng(4).uniform(0, 255, (1, *SIZE, 3))
    x = x.astype("float32")
    expected = mobilenet(x, training=False)
    got = EdgeModel(by_mode["fp32"].path, num_threads=1)(x)
    for name in ("P3", "P4"):
        np.testing.assert_allclose(
            got[name], expected[name].numpy(), atol=1e-4, rtol=1e-4
        )
    assert by_mode["int8"].fidelity["levels"]["P4"]["cosine"] > 0.9


@pytest.mark.matrix_stage
def test_tf_keras_h5_and_saved_model(mobilenet, tmp_path):
    h5 = str(tmp_path / "mobilenet.h5")
    mobilenet.save(h5)
    saved = str(tmp_path / "mobilenet_sm")
    mobilenet.save(saved, save_format="tf")
    x = np.random.default_rng(5).uniform(0, 255, (1, *SIZE, 3))
    x = x.astype("float32")
    expected = mobilenet(x, training=False)
    for source in (h5, saved):
        (record,) = export(source, image_size=SIZE, out=tmp_path / "out")
        got = EdgeModel(record.path, num_threads=1)(x)
        assert set(got) == {"P3", "P4"}
        np.testing.assert_allclose(
            got["P4"], expected["P4"].numpy(), atol=1e-4, rtol=1e-4
        )


def test_keras3_list_outputs_need_level_names(tmp_path):
    # output layer names are inferred ...
    (record,) = export(_keras3_pyramid(), image_size=SIZE, out=tmp_path)
    assert set(EdgeModel(record.path)(np.zeros((1, *SIZE, 3)))) == {
        "c1",
        "c2",
    }
    # ... unless they cannot name a level; then the error asks for names
    nested = _keras3_pyramid(names=("stem conv", "stage conv"))
    with pytest.raises(InputError, match="level_names"):
        export(nested, image_size=SIZE, out=tmp_path)
    with pytest.raises(InputError, match="each of the model's 2 outputs"):
        export(ForeignModel(nested, level_names=["P2"]), image_size=SIZE)


def test_keras3_model_fp32_cpu_int8(photos, tmp_path):
    model = ForeignModel(
        _keras3_pyramid(), level_names=["P2", "P3"], name="mine"
    )
    records = export(
        model,
        image_size=SIZE,
        # int8_mixed looks its scheme's layer types and names up in the
        # wrapped model's layers
        modes="fp32,int8,int8_mixed",
        targets="cpu",
        calibration=photos,
        out=tmp_path,
    )
    levels = {"P2": (1, 16, 16, 8), "P3": (1, 8, 8, 16)}
    for record in records:
        _check_runtime(record, levels)
        assert record.fidelity["levels"]["P3"]["cosine"] > 0.99
    assert sorted(r.mode for r in records) == [
        "cpu", "fp32", "int8", "int8_mixed"
    ]  # fmt: skip
    # the graph holds what our rewrites avoid, and the metadata says so
    notes = records[1].metadata["graph"]["foreign_model"]
    assert records[1].mode == "int8"
    assert "SQUARED_DIFFERENCE" in notes["int16x8_rejects"], notes


def test_saved_model_signature_size_is_checked(tmp_path):
    model = _keras3_pyramid()
    images = keras.Input((32, 32, 3), batch_size=1)
    fixed = keras.Model(images, model(images))
    path = str(tmp_path / "keras3_export")
    fixed.export(path, format="tf_saved_model", verbose=False)
    with pytest.raises(InputError, match="32x32"):
        export(path, image_size=SIZE, out=tmp_path / "out")
    (record,) = export(
        ForeignModel(path, level_names={"output_0": "P2", "output_1": "P3"}),
        image_size=(32, 32),
        out=tmp_path / "out",
    )
    assert set(EdgeModel(record.path)(np.zeros((1, 32, 32, 3)))) == {
        "P2",
        "P3",
    }


def test_cli_exports_a_keras_file_with_level_names(tmp_path, capsys):
    from edge_backbones.cli import main

    path = str(tmp_path / "mine.keras")
    _keras3_pyramid().save(path)
    out = tmp_path / "out"
    code = main(
        ["export", path, "--image-size", "64", "--out", str(out),
         "--level-names", "P2,P3", "--preprocessing", "unit"]
    )  # fmt: skip
    assert code == 0
    artifact = str(out / "mine_64x64_fp32.tflite")
    assert capsys.readouterr().out.split() == [artifact]
    model = EdgeModel(artifact)
    assert model.metadata["input"]["preprocessing"]["scale"] == 1 / 255
    assert set(model(np.zeros((1, *SIZE, 3)))) == {"P2", "P3"}


def test_report_times_a_foreign_artifact(tmp_path):
    from edge_backbones.report.collect import collect_artifacts

    artifacts = tmp_path / "artifacts"
    model = ForeignModel(_keras3_pyramid(), level_names=["P2", "P3"])
    export(model, image_size=SIZE, out=artifacts)
    path = collect_artifacts(
        artifacts, tmp_path / "report", "test-device", runs=2, warmup=1
    )
    with open(path) as f:
        rows = json.load(f)["rows"]
    assert [(r["kind"], r["mode"]) for r in rows] == [("tflite", "fp32")]
    assert rows[0]["latency_ms"]["median"] > 0
