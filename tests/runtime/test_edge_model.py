import json
import subprocess
import sys
import threading
import warnings

import cv2
import numpy as np
import pytest

from edge_backbones.core.fidelity import cosine
from edge_backbones.errors import (
    DelegateUnavailableError,
    InputError,
    MetadataError,
    ModelFileError,
)
from edge_backbones.runtime import DelegateFallbackWarning, EdgeModel
from edge_backbones.runtime.delegates import delegation_summary
from edge_backbones.runtime.preprocess import preprocess
from tests.runtime.conftest import gpu_fallback
from tests.tiny import (
    PREPROCESSING,
    SIZE,
    make_metadata,
    write_with_metadata,
)


def test_float_outputs_match_keras_by_name(tiny):
    model = EdgeModel(tiny["paths"]["f32"])
    out = model(tiny["x"])
    assert sorted(out) == ["P1", "P2"]
    for name, ref in tiny["ref"].items():
        assert out[name].dtype == np.float32
        np.testing.assert_allclose(out[name], ref, atol=1e-4)
    # an unbatched input is taken as a batch of one
    np.testing.assert_array_equal(model(tiny["x"][0])["P2"], out["P2"])
    assert model.active_delegate == "xnnpack"
    assert model.fully_delegated is True
    assert model.input_spec.shape == (1, SIZE, SIZE, 3)


def test_int8_io_is_quantized_and_dequantized_per_tensor(tiny):
    model = EdgeModel(tiny["paths"]["int8"])
    spec = model.input_spec
    assert spec.dtype == "int8" and spec.quantization is not None
    out = model(tiny["x"])
    for name, ref in tiny["ref"].items():
        assert out[name].dtype == np.float32
        assert cosine(out[name], ref) > 0.99
    # float input == the same input quantized by hand with the tensor's
    # own scale and zero point
    q = np.clip(
        np.round(tiny["x"] / spec.quantization["scale"])
        + spec.quantization["zero_point"],
        -128,
        127,
    ).astype(np.int8)
    by_hand = model(q)
    for name in out:
        np.testing.assert_array_equal(out[name], by_hand[name])


def test_per_channel_io_quantization_is_refused_not_taken_as_float():
    # LiteRT's deprecated `quantization` pair reads (0.0, 0) for a tensor
    # with one scale per channel, which made such an output look float
    from edge_backbones.runtime.edge_model import _tensor_spec

    def details(scales, zero_points):
        return {
            "shape": np.array([1, 16, 16, 2]),
            "dtype": np.int8,
            "quantization": (0.0, 0),
            "quantization_parameters": {
                "scales": np.array(scales, np.float32),
                "zero_points": np.array(zero_points, np.int32),
                "quantized_dimension": 3,
            },
        }

    with pytest.raises(ModelFileError, match=r"'P1' is quantized per chan"):
        _tensor_spec("P1", details([0.5, 0.25], [0, 0]), "m.tflite")
    spec = _tensor_spec("P1", details([0.5], [-3]), "m.tflite")
    assert spec.quantization == {"scale": 0.5, "zero_point": -3}
    assert _tensor_spec("P1", details([], []), "m.tflite").quantization is None


def test_uint8_input_goes_in_directly(tiny):
    model = EdgeModel(tiny["paths"]["uint8"])
    assert model.input_spec.dtype == "uint8"
    pixels = np.random.default_rng(2).integers(0, 256, (SIZE, SIZE, 3))
    pixels = pixels.astype(np.uint8)
    direct = model(pixels)
    # the same bytes, dequantized to float and quantized back, match
    quant = model.input_spec.quantization
    as_float = (pixels.astype(np.float32) - quant["zero_point"]) * quant[
        "scale"
    ]
    again = model(as_float)
    for name in direct:
        np.testing.assert_array_equal(direct[name], again[name])


def test_reference_kernels_agree_with_xnnpack(tiny):
    fast = EdgeModel(tiny["paths"]["f32"])(tiny["x"])
    model = EdgeModel(tiny["paths"]["f32"], delegates=("cpu",))
    assert model.active_delegate == "cpu"
    assert model.fully_delegated is None
    slow = model(tiny["x"])
    for name in fast:
        np.testing.assert_allclose(slow[name], fast[name], atol=1e-5)


def test_portable_reference_kernels_run_int8(tiny):
    # what they compute the same on ARM and x86 is checked by the emulated
    # Pi's device tests (.ci/stages/pi.sh)
    builtin = EdgeModel(tiny["paths"]["int8"], delegates=("cpu",))
    model = EdgeModel(tiny["paths"]["int8"], delegates=("portable",))
    assert model.active_delegate == "portable"
    assert model.fully_delegated is None
    portable, fast = model(tiny["x"]), builtin(tiny["x"])
    for name, spec in model.output_specs.items():
        step = spec.quantization["scale"]
        np.testing.assert_allclose(portable[name], fast[name], atol=2 * step)
    with pytest.raises(DelegateUnavailableError, match="takes none"):
        EdgeModel(tiny["paths"]["int8"], delegates=[("portable", {"a": 1})])


def test_tf_lite_backend_is_selectable(tiny):
    pytest.importorskip("tensorflow")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite's deprecation notice
        model = EdgeModel(tiny["paths"]["f32"], backend="tf")
    assert model.backend.name == "tf"
    out = model(tiny["x"])
    np.testing.assert_allclose(out["P1"], tiny["ref"]["P1"], atol=1e-4)
    with pytest.raises(InputError, match="litert"):
        EdgeModel(tiny["paths"]["f32"], backend="onnx")


def test_metadata_drives_preprocessing_and_predict(tiny, tmp_path):
    model = EdgeModel(tiny["paths"]["f32_meta"])
    assert model.metadata["model"]["name"] == "tiny"
    assert model.output_names == ["P1", "P2"]
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (40, 60, 3), np.uint8) for _ in range(3)]
    path = tmp_path / "photo.png"
    cv2.imwrite(str(path), images[0][..., ::-1])
    x = model.preprocess(path)
    np.testing.assert_allclose(
        x, preprocess(images[0], PREPROCESSING, (SIZE, SIZE)), atol=1e-6
    )
    batch = model.predict([path, *images[1:]])
    assert batch["P2"].shape == (3, 8, 8, 16)
    for i, image in enumerate(images):
        one = model(preprocess(image, PREPROCESSING, (SIZE, SIZE)))
        np.testing.assert_allclose(batch["P2"][i : i + 1], one["P2"], 1e-6)


def test_int8_metadata_model_takes_preprocessed_images(tiny):
    model = EdgeModel(tiny["paths"]["int8_meta"])
    image = np.random.default_rng(4).integers(0, 256, (20, 20, 3), np.uint8)
    out = model.predict(image)
    reference = EdgeModel(tiny["paths"]["f32_meta"]).predict(image)
    assert cosine(out["P1"], reference["P1"]) > 0.99


def test_sidecar_metadata_is_read_and_checked(tiny, tmp_path):
    path = tmp_path / "side.tflite"
    path.write_bytes(tiny["contents"]["f32"])
    sidecar = tmp_path / "side.json"
    sidecar.write_text(json.dumps(make_metadata()))
    assert EdgeModel(path).metadata["model"]["name"] == "tiny"
    stale = {**make_metadata(), "sha256": "0" * 64}
    sidecar.write_text(json.dumps(stale))
    with pytest.raises(MetadataError, match="another build"):
        EdgeModel(path)


def test_models_without_metadata_need_an_explicit_spec(tiny):
    model = EdgeModel(tiny["paths"]["f32"])
    assert model.metadata is None
    image = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(MetadataError, match="preprocessing"):
        model.preprocess(image)
    explicit = EdgeModel(tiny["paths"]["f32"], preprocessing=PREPROCESSING)
    assert explicit.preprocess(image).shape == (SIZE, SIZE, 3)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda m: m["input"].update(shape=[1, 64, 64, 3]), "input shape"),
        (lambda m: m["input"].update(dtype="uint8"), "input dtype"),
        (lambda m: m["outputs"].pop("P2"), "outputs are"),
        (lambda m: m["outputs"]["P1"].update(shape=[1, 8, 8, 8]), "P1"),
        (lambda m: m.update(schema="other/2"), "schema"),
    ],
)
def test_metadata_that_disagrees_with_the_model(
    tiny, tmp_path, change, message
):
    metadata = make_metadata()
    change(metadata)
    path = write_with_metadata(
        tmp_path / "bad.tflite", tiny["contents"]["f32"], metadata
    )
    with pytest.raises(MetadataError, match=message):
        EdgeModel(path)


def test_malformed_metadata_json(tiny, tmp_path):
    from tests.tiny import embed

    path = tmp_path / "bad.tflite"
    path.write_bytes(embed(tiny["contents"]["f32"], b"{not json"))
    with pytest.raises(MetadataError, match="JSON"):
        EdgeModel(path)


def test_bad_model_files(tiny, tmp_path):
    with pytest.raises(ModelFileError, match="No model file"):
        EdgeModel(tmp_path / "missing.tflite")
    empty = tmp_path / "empty.tflite"
    empty.write_bytes(b"")
    with pytest.raises(ModelFileError, match="empty"):
        EdgeModel(empty)
    other = tmp_path / "photo.tflite"
    other.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(ModelFileError, match="not a TFLite model"):
        EdgeModel(other)
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(tiny["contents"]["f32"][:600])
    with pytest.raises(ModelFileError, match="truncated"):
        EdgeModel(truncated)


@pytest.mark.parametrize(
    "x, message",
    [
        (np.zeros((1, 16, 16, 3), np.float32), r"model takes \(1, 32, 32, 3\)"),
        (np.zeros((1, SIZE, SIZE, 4), np.float32), "4 channels"),
        (np.zeros((2, SIZE, SIZE, 3), np.float32), "shape"),
        (np.zeros((1, SIZE, SIZE, 3), np.int32), "dtype int32"),
        # raw pixels into a model that expects normalized floats
        (np.zeros((1, SIZE, SIZE, 3), np.uint8), "preprocess"),
    ],
)
def test_bad_inputs(tiny, x, message):
    model = EdgeModel(tiny["paths"]["f32"])
    with pytest.raises(InputError, match=message):
        model(x)


def test_unknown_delegate_raises_even_when_not_strict(tiny):
    with pytest.raises(DelegateUnavailableError, match="xnnpack"):
        EdgeModel(tiny["paths"]["f32"], delegates=("gpuu",))


def test_missing_delegate_falls_back_with_one_warning(tiny, monkeypatch):
    monkeypatch.setenv("EDGE_BACKBONES_GPU_DELEGATE", "/nonexistent/gpu.so")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = EdgeModel(
            tiny["paths"]["f32"], delegates=("gpu", "edgetpu", "xnnpack")
        )
    fallbacks = [
        w for w in caught if issubclass(w.category, DelegateFallbackWarning)
    ]
    assert len(fallbacks) == 1
    assert "gpu.so" in str(fallbacks[0].message)
    assert "'edgetpu'" in str(fallbacks[0].message)
    assert model.active_delegate == "xnnpack"
    np.testing.assert_allclose(
        model(tiny["x"])["P1"], tiny["ref"]["P1"], atol=1e-4
    )
    with pytest.raises(DelegateUnavailableError, match="gpu.so"):
        EdgeModel(tiny["paths"]["f32"], delegates=("gpu",), strict=True)


def test_a_library_that_is_not_a_delegate(tiny):
    import ctypes.util

    libm = ctypes.util.find_library("m")
    if libm is None:
        pytest.skip("no libm to load")
    with pytest.raises(DelegateUnavailableError, match="not a TFLite"):
        EdgeModel(tiny["paths"]["f32"], delegates=(libm,), strict=True)
    with pytest.warns(DelegateFallbackWarning):
        model = EdgeModel(tiny["paths"]["f32"], delegates=(libm,))
    assert model.active_delegate == "xnnpack"


class _FakeInterpreter:
    """Nodes as the interpreter lists them after a delegate took some."""

    def __init__(self, ops, outputs):
        self.ops, self.outputs = ops, outputs

    def _get_ops_details(self):
        return self.ops

    def get_output_details(self):
        return [{"index": i} for i in self.outputs]


def _op(index, name, inputs, outputs):
    return {
        "index": index,
        "op_name": name,
        "inputs": inputs,
        "outputs": outputs,
    }


def test_delegation_summary_finds_ops_left_on_cpu():
    # conv(0->1), gelu(1->2), conv(2->3); the delegate took both convs
    # but not the gelu between them
    ops = [
        _op(0, "CONV_2D", [0, 10], [1]),
        _op(1, "GELU", [1], [2]),
        _op(2, "CONV_2D", [2, 11], [3]),
        _op(3, "DELEGATE", [0, 10], [1]),
        _op(4, "DELEGATE", [2, 11], [3]),
    ]
    assert delegation_summary(_FakeInterpreter(ops, [3])) == (2, ["GELU"])
    whole = [*ops[:3], _op(3, "DELEGATE", [0, 10, 11], [3])]
    assert delegation_summary(_FakeInterpreter(whole, [3])) == (1, [])


def test_many_threads_get_the_single_threaded_results(tiny):
    model = EdgeModel(tiny["paths"]["int8"])
    rng = np.random.default_rng(5)
    inputs = [rng.uniform(-2, 2, (1, SIZE, SIZE, 3)).astype(np.float32)
              for _ in range(8)]  # fmt: skip
    expected = [model(x) for x in inputs]
    mismatches, errors = [], []

    def work(i):
        for _ in range(50):
            try:
                out = model(inputs[i])
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(repr(exc))
                continue
            if any(not np.array_equal(out[k], expected[i][k]) for k in out):
                mismatches.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and mismatches == []


def test_runtime_imports_neither_tensorflow_nor_keras(tiny):
    code = (
        "import sys, numpy as np\n"
        "from edge_backbones.runtime import EdgeModel\n"
        f"model = EdgeModel({str(tiny['paths']['int8_meta'])!r})\n"
        "out = model.predict([np.zeros((20, 30, 3), np.uint8)])\n"
        "assert out['P2'].shape == (1, 8, 8, 16)\n"
        "heavy = [m for m in sys.modules\n"
        "         if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras')]\n"
        "print(heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_compiled_model_engine_matches_the_interpreter(tiny):
    # the GPU accelerator's code path, driven on LiteRT's CPU accelerator
    # since this machine has no GPU
    pytest.importorskip("ai_edge_litert.compiled_model")
    from edge_backbones.runtime.engines import CompiledModelEngine

    model = EdgeModel(tiny["paths"]["int8"], num_threads=1)
    engine = CompiledModelEngine(str(tiny["paths"]["int8"]), "cpu", 1)
    assert engine.fully_delegated is True
    engine.bind(
        "serving_default",
        "images",
        [
            (n, s.shape, np.dtype(s.dtype))
            for n, s in model.output_specs.items()
        ],
    )
    x = model._to_input(tiny["x"])
    for got, expected in zip(engine.run(x), model._engine.run(x), strict=True):
        np.testing.assert_array_equal(got, expected)


def test_gpu_uses_litert_accelerator_or_says_why_not(tiny, monkeypatch):
    monkeypatch.delenv("EDGE_BACKBONES_GPU_DELEGATE", raising=False)
    model, fallbacks = gpu_fallback(tiny["paths"]["f32"])
    if model.active_delegate == "gpu":  # a machine with a usable GPU
        assert fallbacks == []
        out = model(tiny["x"])
        np.testing.assert_allclose(out["P1"], tiny["ref"]["P1"], atol=1e-2)
    else:
        assert len(fallbacks) == 1
        assert "libtensorflowlite_gpu_delegate" in fallbacks[0]
        if model.backend.name == "litert":
            assert "LiteRT's GPU accelerator" in fallbacks[0]


def test_options_for_the_cpu_paths_are_refused(tiny):
    with pytest.raises(DelegateUnavailableError, match="options go to"):
        EdgeModel(tiny["paths"]["f32"], delegates=[("xnnpack", {"n": 1})])


def test_a_missing_requested_backend_names_its_own_package(monkeypatch):
    from edge_backbones.errors import MissingDependencyError
    from edge_backbones.runtime import load_backend

    monkeypatch.setitem(sys.modules, "tflite_runtime", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", None)
    with pytest.raises(MissingDependencyError) as caught:
        load_backend("tflite_runtime")
    message = str(caught.value)
    # LiteRT is installed here: "no TFLite interpreter is installed" and
    # "pip install ai-edge-litert" would both be wrong
    assert "pip install tflite-runtime" in message
    assert "backend=None" in message
    assert "No TFLite interpreter is installed" not in message


def test_gpu_runtime_that_cannot_start_falls_back(tiny, monkeypatch):
    # the probe passed, but the accelerator still fails in this process
    environment = pytest.importorskip("ai_edge_litert.environment")
    from edge_backbones.runtime import gpu_probe

    monkeypatch.delenv("EDGE_BACKBONES_GPU_DELEGATE", raising=False)
    usable = gpu_probe.GpuVerdict(True, "", "Test GPU", False)
    monkeypatch.setattr(gpu_probe, "gpu_verdict", lambda: usable)

    def no_runtime(*args, **kwargs):
        raise RuntimeError("Failed to create LiteRT environment")

    monkeypatch.setattr(environment.Environment, "create", no_runtime)
    model, fallbacks = gpu_fallback(tiny["paths"]["f32"])
    assert model.active_delegate == "xnnpack"
    assert len(fallbacks) == 1
    assert "Failed to create LiteRT environment" in fallbacks[0]
    with pytest.raises(DelegateUnavailableError, match="GPU accelerator"):
        EdgeModel(tiny["paths"]["f32"], delegates=("gpu",), strict=True)


def test_run_batch_stacks_outputs_in_input_order(tiny):
    model = EdgeModel(tiny["paths"]["f32"])
    rng = np.random.default_rng(1)
    inputs = [
        rng.normal(size=model.input_spec.shape[1:]).astype(np.float32)
        for _ in range(3)
    ]
    stacked = model.run_batch(inputs)
    for i, x in enumerate(inputs):
        one = model(x)
        for name, value in one.items():
            np.testing.assert_array_equal(stacked[name][i : i + 1], value)
    with pytest.raises(InputError, match="no inputs"):
        model.run_batch([])
