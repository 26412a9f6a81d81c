"""End to end on a tiny backbone: convert, verify, write, read back."""

import hashlib
import json
import os
import platform
import re

import ai_edge_litert
import numpy as np
import pytest

from edge_backbones.core import modes
from edge_backbones.core.artifact import ArtifactMetadata, validate
from edge_backbones.core.fidelity import cosine
from edge_backbones.errors import (
    CalibrationError,
    FidelityError,
    InputError,
    WeightsNotFoundError,
)
from edge_backbones.exporter.graph import serving_model
from edge_backbones.exporter.options import parse_image_size
from edge_backbones.exporter.pipeline import export
from edge_backbones.runtime import gpu_probe
from edge_backbones.runtime.edge_model import EdgeModel
from edge_backbones.runtime.model_file import read_model_file
from edge_backbones.runtime.preprocess import preprocess
from tests.tflite_ops import op_histogram, operators

SIZE = (32, 48)  # non-square on purpose


@pytest.fixture(scope="module")
def exported(tiny_backbone, photos, tmp_path_factory):
    out = tmp_path_factory.mktemp("artifacts")
    records = export(
        tiny_backbone,
        image_size="32x48",
        modes="fp32,int8,int8_mixed,int16x8",
        targets="cpu,npu,gpu",
        calibration=photos,
        out=out,
        thresholds={"int8": 0.99, "npu": 0.99, "int16x8": 0.995},
    )
    return {r.mode: r for r in records}, out


def test_every_mode_written_with_metadata(exported):
    records, out = exported
    assert sorted(records) == [
        "cpu", "fp32", "gpu", "int16x8", "int8", "int8_mixed", "npu"
    ]  # fmt: skip
    for mode, record in records.items():
        name = f"tiny_backbone_32x48_{mode}.tflite"
        assert os.path.basename(record.path) == name
        embedded = json.loads(
            read_model_file(record.path).metadata["edge_backbones"]
        )
        with open(record.path[: -len(".tflite")] + ".json") as f:
            sidecar = json.load(f)
        with open(record.path, "rb") as f:
            content = f.read()
        assert sidecar.pop("sha256") == hashlib.sha256(content).hexdigest()
        assert sidecar.pop("size_bytes") == len(content) == record.size_bytes
        # both copies hold to the one schema (by the reference validator
        # too, in tests/test_artifact_schema.py) and read back typed
        # without losing a key
        validate(embedded)
        assert ArtifactMetadata.from_dict(sidecar).to_dict() == sidecar
        assert sidecar == embedded
        assert embedded["schema"] == "edge_backbones.tflite/1"
        assert embedded["mode"] == mode
        assert embedded["model"]["weights"] == "in-memory"
        assert embedded["input"]["shape"] == [1, *SIZE, 3]
        assert list(embedded["outputs"]) == ["P1", "P2"]
        assert embedded["outputs"]["P2"]["shape"] == [1, 4, 6, 16]
        assert embedded["outputs"]["P2"]["stride"] == 8
        levels = embedded["fidelity"]["levels"]
        assert set(levels) == {"P1", "P2"}
        assert embedded["fidelity"]["images"] >= 1
        # int8 kernels round differently per architecture: the fidelity
        # names the machine and runtime that measured it
        assert embedded["verified_on"] == {
            "arch": platform.machine(),
            "emulated": os.environ.get("EDGE_BACKBONES_EMULATED") or None,
            "runtime": f"litert {ai_edge_litert.__version__}",
            "delegate": "xnnpack",
        }
        # the graph block agrees with LiteRT's own reading of the file
        independent = op_histogram(record.path)
        assert embedded["graph"]["op_histogram"] == independent
        assert embedded["graph"]["op_count"] == sum(independent.values())
    # only artifacts and sidecars are left: no temp files, no SavedModel
    assert sorted(os.listdir(out)) == sorted(
        f"tiny_backbone_32x48_{m}.{ext}" for m in records
        for ext in ("tflite", "json")
    )  # fmt: skip


def test_fidelity_ordering_and_gates(exported):
    records, _ = exported

    def worst(mode):
        levels = records[mode].fidelity["levels"].values()
        return min(level["cosine"] for level in levels)

    assert worst("fp32") > 0.9999
    # int16 activations are closer to float than int8 ones
    assert worst("int16x8") > worst("int8")
    # int8_mixed keeps attention, softmax and norms in float
    assert worst("int8_mixed") > worst("int8")
    # cpu: dynamic int8 (this tiny model's weights are too small to be
    # quantized, so it is float)
    assert worst("cpu") > worst("int8_mixed")
    assert records["cpu"].metadata["recipe"] == "cpu"
    # the CPU check that chose the cpu recipe is recorded
    assert records["cpu"].metadata["recipe_reason"] == (modes.cpu_plan().reason)
    assert records["int8_mixed"].metadata["recipe"] is None


def test_metadata_records_the_resolved_scheme(exported):
    records, _ = exported
    schemes = {mode: r.metadata["scheme"] for mode, r in records.items()}
    names = {mode: scheme["name"] for mode, scheme in schemes.items()}
    assert names == {
        "fp32": "fp32",
        "int8": "wi8_ai8",
        "int8_mixed": "wi8_ai8_mixed",
        "int16x8": "wi8_ai16",
        "cpu": modes.cpu_plan().scheme,
        "npu": "wi8_ai16_io16",
        "gpu": "wf16",
    }
    assert schemes["npu"]["io"] == "integer" and schemes["npu"]["checks"] == [
        "forbid_float_handoffs", "forbid_float_tensors"
    ]  # fmt: skip
    assert schemes["gpu"]["checks"] == ["require_gpu_compatible"]
    assert schemes["int8_mixed"]["float_ops"] == [
        "BATCH_MATMUL", "SOFTMAX", "GELU", "ADD"
    ]  # fmt: skip
    assert "LayerNormalization" in schemes["int8_mixed"]["float_layer_types"]
    assert schemes["cpu"]["kind"] == "target"
    assert schemes["int8"]["kind"] == "mode" and schemes["int8"]["alias"] == (
        "int8"
    )
    # no --float-layers: nothing asked, nothing matched
    for scheme in schemes.values():
        assert scheme["float_layers"] == {"requested": [], "matched_nodes": []}
    # int8_mixed kept its layer norms' ops float, and says which; no other
    # scheme has float layer types
    type_nodes = schemes.pop("int8_mixed")["float_layer_type_nodes"]
    assert type_nodes and all("norm" in node for node in type_nodes)
    assert all(not s["float_layer_type_nodes"] for s in schemes.values())


def test_gpu_recipe_is_checked_fp16(exported):
    records, _ = exported
    meta = records["gpu"].metadata
    assert meta["recipe"] == "gpu" and meta["graph"]["gpu_compatible"] is True
    assert "float16" in read_model_file(records["gpu"].path).tensor_types
    # the check ran on the GPU accelerator, or says why it could not
    verdict = gpu_probe.gpu_verdict()
    gpu_run = meta["graph"]["gpu_run"]
    if verdict.usable:
        assert gpu_run["status"] == "ran" and gpu_run["fully_delegated"]
        assert gpu_run["device"] == verdict.device
        assert min(gpu_run["cosine"].values()) >= 0.999
    else:
        assert gpu_run == {
            "status": "not run: no GPU adapter",
            "reason": verdict.reason,
        }


def test_npu_is_integer_end_to_end(exported):
    records, _ = exported
    npu = read_model_file(records["npu"].path)
    assert "QUANTIZE" not in npu.op_histogram
    assert "DEQUANTIZE" not in npu.op_histogram
    assert not {"float32", "float16"} & set(npu.tensor_types)
    # a16w8: int16 activations and I/O, no depthwise op left
    assert {"int16", "int8"} <= set(npu.tensor_types)
    assert "DEPTHWISE_CONV_2D" not in npu.op_histogram
    meta = records["npu"].metadata
    assert meta["input"]["dtype"] == "int16"
    assert meta["input"]["quantization"]["scale"] > 0
    assert all(o["dtype"] == "int16" for o in meta["outputs"].values())
    # int8_mixed: every layer-norm op and the attention run in float,
    # each float island bracketed by (de)quantize ops
    mixed = records["int8_mixed"].metadata["graph"]["op_histogram"]
    assert mixed["DEQUANTIZE"] > 2 * 4  # 4 layer norms + 4 matmuls ...


def test_int8_mixed_keeps_the_layer_norms_float(exported):
    records, _ = exported
    # the ops the converter names after the tiny backbone's norm1 / norm2
    # layers (`serving_1/block1_1/norm1_1/Mean`): mean, centre, square,
    # variance, + epsilon, rsqrt, scale in each of the 4 layer norms
    in_norm = re.compile(r"/norm[12](_\d+)?/")
    mixed = operators(records["int8_mixed"].path)
    norm_ops = [op for op in mixed if in_norm.search(op.output)]
    assert len(norm_ops) >= 4 * 6, [op.output for op in mixed]
    assert {op.output_type for op in norm_ops} == {"FLOAT32"}, norm_ops
    # while the convolutions and dense layers are int8
    assert {
        op.output_type
        for op in mixed
        if op.name in ("CONV_2D", "FULLY_CONNECTED")
    } == {"INT8"}


def _check_in_graph_normalization(path, backbone, calibration_dir, minimum):
    """The artifact fed raw camera pixels computes what the float Keras
    model computes fed the package's own float preprocessing, on real
    photos (the export's gate compares with the same pixel graph, so it
    cannot see a wrong in-graph normalization)."""
    model = EdgeModel(path, num_threads=1)
    assert model.metadata["input"]["preprocessing"]["pixels_in_graph"]
    float_model = serving_model(backbone, SIZE)  # float input
    float_spec = {**backbone.preprocessing, "pixels_in_graph": False}
    for photo in sorted(calibration_dir.glob("*.jpg"))[:3]:
        pixels = model.preprocess(str(photo))
        assert pixels.dtype == np.uint8
        got = model(pixels)
        x = preprocess(str(photo), float_spec, SIZE)[None]
        expected = float_model(x, training=False)
        for name, value in expected.items():
            similarity = cosine(got[name], value)
            assert similarity >= minimum, (photo.name, name, similarity)


def test_npu_int8_takes_camera_pixels(
    tiny_backbone, photos, calibration_dir, tmp_path
):
    """uint8 RGB in, normalization in the graph, integer all the way."""
    (record,) = export(
        tiny_backbone,
        image_size=SIZE,
        targets="npu_int8",
        pixels_in_graph=True,
        io_dtype="uint8",
        calibration=photos,
        out=tmp_path,
        thresholds={"npu_int8": 0.99},
    )
    graph = read_model_file(record.path)
    assert graph.float_handoffs == {}
    assert not {"float32", "float16"} & set(graph.tensor_types)
    # uint8 pixels become int8 by an integer requantize, not via float
    assert graph.op_histogram.get("QUANTIZE", 0) >= 1
    assert record.metadata["input"]["dtype"] == "uint8"
    model = EdgeModel(record.path, num_threads=1)
    photo = sorted(photos.glob("*.jpg"))[0]
    pixels = model.preprocess(str(photo))
    assert pixels.dtype == np.uint8
    assert model(pixels)["P2"].shape == (1, 4, 6, 16)
    _check_in_graph_normalization(
        record.path, tiny_backbone, calibration_dir, 0.99
    )


def test_runtime_reads_the_artifact(exported, photos):
    records, _ = exported
    model = EdgeModel(records["int8"].path, num_threads=1)
    assert model.metadata["mode"] == "int8"
    photo = sorted(photos.glob("*.jpg"))[0]
    out = model.predict([str(photo)])
    assert out["P1"].shape == (1, 8, 12, 8)


def test_failed_gate_writes_nothing_and_keeps_the_good_one(
    tiny_backbone, photos, tmp_path
):
    good = export(tiny_backbone, image_size=SIZE, modes="fp32", out=tmp_path)
    path = good[0].path
    with open(path, "rb") as f:
        before = f.read()
    with pytest.raises(FidelityError, match="P1|P2") as info:
        export(
            tiny_backbone,
            image_size=SIZE,
            modes="fp32,int8",
            calibration=photos,
            out=tmp_path,
            thresholds={"int8": 1.0},
        )
    assert "cosine" in str(info.value) and "--threshold int8" in str(info.value)
    assert not os.path.exists(str(tmp_path / "tiny_backbone_32x48_int8.tflite"))
    assert sorted(os.listdir(tmp_path)) == [
        "tiny_backbone_32x48_fp32.json",
        "tiny_backbone_32x48_fp32.tflite",
    ]
    with open(path, "rb") as f:
        after = f.read()
    # the rewritten fp32 artifact is equally good; the int8 one is absent
    assert (
        read_model_file(after).op_histogram
        == read_model_file(before).op_histogram
    )


def test_pixels_in_graph_takes_raw_uint8(
    tiny_backbone, photos, calibration_dir, tmp_path
):
    records = export(
        tiny_backbone,
        image_size=SIZE,
        modes="int8_io",
        calibration=photos,
        out=tmp_path,
        pixels_in_graph=True,
        io_dtype="uint8",
        thresholds={"int8_io": 0.95},
    )
    meta = records[0].metadata["input"]
    assert meta["dtype"] == "uint8"
    assert meta["preprocessing"]["pixels_in_graph"] is True
    # raw pixels map onto the input tensor exactly
    assert meta["quantization"]["scale"] == pytest.approx(1.0, abs=1e-6)
    assert meta["quantization"]["zero_point"] == 0
    _check_in_graph_normalization(
        records[0].path, tiny_backbone, calibration_dir, 0.95
    )


def test_min_cos_keeps_the_fastest_passing(tiny_backbone, photos, tmp_path):
    records = export(
        tiny_backbone,
        image_size=SIZE,
        modes="fp32,int8",
        calibration=photos,
        out=tmp_path,
        min_cos=0.99999,
        bench_runs=3,
    )
    # int8 cannot reach 0.99999 on this model; fp32 is the one kept
    assert [r.mode for r in records] == ["fp32"]
    assert records[0].latency_ms > 0
    assert sorted(os.listdir(tmp_path)) == [
        "tiny_backbone_32x48_fp32.json",
        "tiny_backbone_32x48_fp32.tflite",
    ]


def test_min_cos_rejects_a_refused_graph_and_keeps_choosing(
    tiny_backbone, tmp_path, monkeypatch
):
    from edge_backbones.errors import ExportError
    from edge_backbones.exporter import pipeline

    real_check = pipeline.verify.check_graph

    def refuse_gpu(plan, *args):
        if plan.mode == "gpu":
            raise ExportError("The gpu graph failed the GPU check.")
        return real_check(plan, *args)

    monkeypatch.setattr(pipeline.verify, "check_graph", refuse_gpu)
    records = export(
        tiny_backbone,
        image_size=SIZE,
        modes="fp32",
        targets="gpu",
        out=tmp_path,
        min_cos=0.99,
        bench_runs=2,
    )
    assert [r.mode for r in records] == ["fp32"]


def test_min_cos_failure_names_the_min_cos_fix(tiny_backbone, photos, tmp_path):
    with pytest.raises(FidelityError, match="int8: cosine") as info:
        export(
            tiny_backbone,
            image_size=SIZE,
            modes="int8",
            calibration=photos,
            out=tmp_path,
            min_cos=0.99999,
        )
    # per-mode thresholds are not the gate when choosing
    assert "--threshold" not in str(info.value)
    assert "--min-cos" in str(info.value)
    assert not list(tmp_path.glob("*.tflite"))


def test_preset_without_weights_needs_an_explicit_choice(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="--random-weights"):
        export("mit_b0", image_size=64, out=tmp_path)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "value, expected",
    [(512, (512, 512)), ("384x640", (384, 640)), ((32, 48), (32, 48))],
)
def test_parse_image_size(value, expected):
    assert parse_image_size(value) == expected


def test_parse_image_size_rejects_garbage():
    with pytest.raises(ValueError, match="384x640"):
        parse_image_size("big")


@pytest.mark.parametrize("value", [512.0, None, True])
def test_parse_image_size_rejects_non_sizes_with_a_typed_error(value):
    with pytest.raises(InputError, match="384x640"):
        parse_image_size(value)


def test_parse_image_size_takes_numpy_integers():
    assert parse_image_size(np.int64(64)) == (64, 64)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        # a typo in a threshold's mode must not be silently ignored
        ({"modes": "fp32", "thresholds": {"fp23": 0.5}}, "fp23"),
        # float I/O is not an int8_io / npu artifact
        ({"modes": "int8_io", "io_dtype": "float32"}, "io_dtype"),
    ],
)
def test_bad_options_fail_before_any_work(tiny_backbone, tmp_path, kwargs,
                                          match):  # fmt: skip
    with pytest.raises(InputError, match=match):
        export(tiny_backbone, image_size=SIZE, out=tmp_path, **kwargs)
    assert os.listdir(tmp_path) == []


def test_manifest_without_holdout_says_how_to_fix(
    tiny_backbone, photos, tmp_path
):
    import shutil

    folder = tmp_path / "photos"
    folder.mkdir()
    entries = []
    for path in sorted(photos.glob("*.jpg"))[:2]:
        shutil.copy(path, folder / path.name)
        entries.append(
            {"file": path.name, "split": "calibration", "license": "x"}
        )
    (folder / "manifest.json").write_text(json.dumps({"photos": entries}))
    with pytest.raises(CalibrationError, match='"holdout" in its manifest'):
        export(
            tiny_backbone,
            image_size=SIZE,
            modes="fp32",
            calibration=folder,
            out=tmp_path / "out",
        )


def test_layer_report_and_float_layers(tiny_backbone, photos, tmp_path):
    records = export(
        tiny_backbone,
        image_size=SIZE,
        modes="int8",
        calibration=photos,
        out=tmp_path,
        layer_report=True,
        float_layers=["block1_1/MatMul_1"],
        thresholds={"int8": 0.95},
    )
    report = (tmp_path / "tiny_backbone_32x48_layers.csv").read_text()
    assert "BATCH_MATMUL" in report and "rmse/scale" in report
    # the named node runs in float: it is wrapped by (de)quantize ops
    hist = records[0].metadata["graph"]["op_histogram"]
    assert hist["DEQUANTIZE"] > 2
    # and the metadata says so: the hand-tuned int8 artifact is told from
    # a plain one by what was asked and the graph nodes it matched
    scheme = records[0].metadata["scheme"]
    assert scheme["name"] == "wi8_ai8" and scheme["alias"] == "int8"
    requested = scheme["float_layers"]["requested"]
    matched = scheme["float_layers"]["matched_nodes"]
    assert requested == ["block1_1/MatMul_1"]
    assert matched and all("block1_1/MatMul_1" in node for node in matched)


def test_unknown_float_layer_is_an_error(tiny_backbone, tmp_path):
    from edge_backbones.errors import ExportError

    with pytest.raises(ExportError, match="no_such_layer"):
        export(
            tiny_backbone,
            image_size=SIZE,
            modes="fp32",
            out=tmp_path,
            float_layers=["no_such_layer"],
        )


def test_comma_separated_names_like_the_cli(tiny_backbone, tmp_path):
    from edge_backbones.errors import ExportError

    (record,) = export(
        tiny_backbone, image_size=SIZE, modes="fp32", out=tmp_path,
        out_features="P2",
    )  # fmt: skip
    assert list(record.metadata["outputs"]) == ["P2"]
    with pytest.raises(InputError, match="P9"):
        export(tiny_backbone, image_size=SIZE, out=tmp_path,
               out_features=["P9"])  # fmt: skip
    with pytest.raises(ExportError, match="'no_such_layer'"):
        export(tiny_backbone, image_size=SIZE, out=tmp_path,
               float_layers="no_such_layer")  # fmt: skip


def test_reference_matches_keras(tiny_backbone, exported):
    # the fp32 artifact reproduces Keras on a fresh input, not only on the
    # held-out photos the exporter used
    records, _ = exported
    model = EdgeModel(records["fp32"].path, num_threads=1)
    x = np.random.default_rng(1).normal(size=(1, *SIZE, 3)).astype("float32")
    got = model(x)
    want = serving_model(tiny_backbone, SIZE)(x)
    for name in ("P1", "P2"):
        np.testing.assert_allclose(got[name], np.asarray(want[name]), atol=1e-4)


def test_preset_with_config_overrides_and_random_weights(tmp_path):
    from tests.tiny import TINY_MIT_TWO_STAGES

    records = export(
        "mit_b0",
        image_size="32x64",
        out=tmp_path,
        random_weights=True,
        config=TINY_MIT_TWO_STAGES,
        name="mit_tiny",
    )
    meta = records[0].metadata
    assert meta["model"]["weights"] == "random"
    assert meta["model"]["config"]["hidden_dims"] == [8, 16]
    assert meta["model"]["config"]["image_shape"] == [32, 64, 3]
    assert os.path.basename(records[0].path) == "mit_tiny_32x64_fp32.tflite"
