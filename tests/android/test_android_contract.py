"""What android_demo's `:core` reads matches what the exporter writes.

For every artifact kind the app bundles (fp32, cpu, gpu, npu_int8 with int8
or uint8 pixel input), the sidecar fields `:core` reads (ModelMetadata.kt) must
agree with the model's own SignatureDef as the runtime binds it: input name,
shape, dtype and quantization, output names (the keys `:core` maps outputs
by), shapes, dtypes and quantization. The `android` test checks that
`report merge` takes the device JSON the Kotlin code wrote; the CI stage
`.ci/stages/android.sh` runs it with the goldens it made.
"""

import importlib.util
import json
import os
import pathlib

import numpy as np
import pytest

from edge_backbones.runtime.edge_model import EdgeModel

REPO = pathlib.Path(__file__).resolve().parents[2]
GOLDENS_ENV = "EDGE_BACKBONES_ANDROID_GOLDENS"
# what the Kotlin side implements (DType, ResizePolicy, Interpolation)
CORE_DTYPES = {"float32", "int8", "uint8"}
CORE_RESIZES = {"stretch", "longest_side_pad"}
CORE_INTERPOLATIONS = {"linear", "nearest"}


def _make_goldens():
    path = REPO / "android_demo" / "tools" / "make_goldens.py"
    spec = importlib.util.spec_from_file_location("make_goldens", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def artifacts(calibration_dir, tmp_path_factory):
    """{kind: .tflite path}: the CI stage's goldens, or fresh exports."""
    goldens = _make_goldens()
    folder = os.environ.get(GOLDENS_ENV)
    if folder:
        return {k: os.path.join(folder, k + ".tflite")
                for k in goldens.ARTIFACT_KINDS}  # fmt: skip
    out = tmp_path_factory.mktemp("android_artifacts")
    return goldens.export_kinds(str(calibration_dir), str(out))


def _sidecar(path):
    with open(os.path.splitext(path)[0] + ".json") as f:
        return json.load(f)


def _quantization(spec):
    return spec.quantization and {
        "scale": pytest.approx(spec.quantization["scale"], rel=1e-7),
        "zero_point": spec.quantization["zero_point"],
    }


@pytest.mark.android
@pytest.mark.parametrize(
    "kind", ["fp32", "cpu", "gpu", "npu_int8", "npu_uint8_pixels"]
)
def test_sidecar_matches_the_signature(artifacts, kind):
    model = EdgeModel(artifacts[kind], num_threads=1)
    # ModelMetadata.kt's SIGNATURE_KEY: the app binds buffers in it
    interpreter = model.backend.Interpreter(model_path=artifacts[kind])
    assert list(interpreter.get_signature_list()) == ["serving_default"]
    meta = _sidecar(artifacts[kind])
    declared = meta["input"]
    spec = model.input_spec
    assert declared["name"] == spec.name
    assert declared["shape"] == list(spec.shape)
    assert declared["dtype"] == spec.dtype and spec.dtype in CORE_DTYPES
    assert declared["quantization"] == _quantization(spec)
    preprocessing = declared["preprocessing"]
    assert preprocessing["resize"] in CORE_RESIZES
    assert preprocessing["interpolation"] in CORE_INTERPOLATIONS
    # :core maps outputs by these keys; the order is the pyramid's, fine first
    assert list(meta["outputs"]) == list(model.output_specs)
    for name, out in model.output_specs.items():
        level = meta["outputs"][name]
        assert level["shape"] == list(out.shape), name
        assert level["dtype"] == out.dtype and out.dtype in CORE_DTYPES
        assert level["quantization"] == _quantization(out), name
        assert level["stride"] * out.shape[1] == spec.shape[1], name
        assert level["channels"] == out.shape[3], name
    integer = {"npu_int8": "int8", "npu_uint8_pixels": "uint8"}
    assert spec.dtype == integer.get(kind, "float32")
    assert preprocessing["pixels_in_graph"] is (kind == "npu_uint8_pixels")


@pytest.mark.android
def test_report_merge_takes_the_phone_json(artifacts, tmp_path):
    """The device JSON :core wrote (GoldenTest) merges beside a laptop's."""
    folder = os.environ.get(GOLDENS_ENV)
    if not folder:
        pytest.skip(
            f"{GOLDENS_ENV} is not set: run .ci/stages/android.sh, which "
            "writes the goldens and the Kotlin device JSON, then this test."
        )
    from edge_backbones.cli import main
    from edge_backbones.report.collect import collect_artifacts
    from edge_backbones.report.merge import load_and_merge

    phone = os.path.join(folder, "phone.json")
    assert os.path.isfile(phone), "the Kotlin GoldenTest did not write it"
    laptop_artifacts = tmp_path / "laptop_artifacts"
    laptop_artifacts.mkdir()
    for ext in (".tflite", ".json"):
        src = os.path.splitext(artifacts["fp32"])[0] + ext
        (laptop_artifacts / ("mit_tiny_fp32" + ext)).write_bytes(
            pathlib.Path(src).read_bytes()
        )
    laptop = collect_artifacts(
        str(laptop_artifacts), str(tmp_path), "laptop", runs=3, warmup=1
    )
    merged = load_and_merge([laptop, phone])
    rows = {(r["device"], r["mode"]): r for r in merged["rows"]}
    assert set(rows) == {("laptop", "fp32"), ("pixel-test", "fp32"),
                         ("pixel-test", "npu_int8")}  # fmt: skip
    phone_npu = rows[("pixel-test", "npu_int8")]
    assert phone_npu["delegate"] == "xnnpack"
    assert phone_npu["accelerator_attempts"][0]["error"]
    # the phone's npu row is compared with the phone's own fp32 row
    assert phone_npu["speedup_vs_fp32"] == pytest.approx(
        rows[("pixel-test", "fp32")]["latency_ms"]["median"]
        / phone_npu["latency_ms"]["median"]
    )
    out = tmp_path / "merged"
    assert main(["report", "merge", laptop, phone, "--out", str(out)]) == 0
    markdown = (out / "report.md").read_text()
    assert "Device: pixel-test" in markdown and "Device: laptop" in markdown
    # a phone has no Python; its runtime is LiteRT's Android artifact
    assert "Python None" not in markdown
    assert "Runtime: com.google.ai.edge.litert:litert 2.3.0." in markdown


def _golden_files():
    folder = os.environ.get(GOLDENS_ENV)
    if not folder:
        pytest.skip(f"needs {GOLDENS_ENV} (the CI stage's goldens)")
    return pathlib.Path(folder)


@pytest.mark.android
def test_segmenter_sidecar_matches_the_signature():
    """Segmentation.kt reads `classes` (1, H, W) uint8 ids and `logits`
    (1, h, w, C) by name, and the class names from task.class_names."""
    folder = _golden_files()
    path = str(folder / "segmenter.tflite")
    meta = _sidecar(path)
    outputs = EdgeModel(path, num_threads=1).output_specs
    assert set(meta["outputs"]) == set(outputs) == {"classes", "logits"}
    for name, spec in outputs.items():
        assert meta["outputs"][name]["shape"] == list(spec.shape)
        assert meta["outputs"][name]["dtype"] == spec.dtype
    assert meta["outputs"]["classes"]["dtype"] == "uint8"
    assert len(meta["outputs"]["classes"]["shape"]) == 3
    names = meta["task"]["class_names"]
    assert len(names) == meta["task"]["num_classes"]
    assert meta["outputs"]["logits"]["shape"][-1] == len(names)


@pytest.mark.android
def test_sam_decoder_sidecar_matches_the_signature():
    """SamDecoderMetadata (Sam.kt) binds the decoder's inputs by the names,
    shapes and dtypes of its sidecar's task.inputs, and its outputs by the
    sidecar's outputs: they must be the SignatureDef's."""
    from edge_backbones.runtime.sam_predictor import SignatureModel

    folder = _golden_files()
    decoder = SignatureModel(str(folder / "sam_decoder.tflite"), 1)
    task = decoder.metadata["task"]
    assert set(task["inputs"]) == set(decoder.input_details)
    for name, details in decoder.input_details.items():
        declared = task["inputs"][name]
        assert declared["shape"] == list(details["shape"])
        assert declared["dtype"] == np.dtype(details["dtype"]).name
    outputs = decoder.metadata["outputs"]
    assert set(outputs) == set(decoder.output_details)
    for name, details in decoder.output_details.items():
        assert outputs[name]["shape"] == list(details["shape"])
    slots = task["num_point_slots"]
    assert slots == task["max_points"] + 2
    assert task["inputs"]["point_coords"]["shape"] == [1, slots, 2]
    h, w = task["mask_input_size"]
    assert task["inputs"]["mask_input"]["shape"] == [1, h, w, 1]
    assert outputs["masks"]["shape"][1:3] == [h, w]
