"""The `gpu` target on LiteRT's real GPU accelerator.

These run only where a GPU adapter is usable: a real GPU, or a software
Vulkan driver (`benchmarks/gpu/install_software_vulkan.sh`, then source its
env.sh). `.ci/stages/gpu.sh` installs SwiftShader and runs this file with
it; elsewhere they skip and say so. Sizes stay small: a cold shader compile
on a software driver can pass LiteRT's fixed 120 s buffer-lock timeout.
"""

import numpy as np
import pytest

from edge_backbones.core.fidelity import cosine
from edge_backbones.errors import ExportError
from edge_backbones.exporter import gpu_check
from edge_backbones.exporter.pipeline import export
from edge_backbones.runtime import EdgeModel, gpu_probe

pytestmark = pytest.mark.gpu_stage

# ViTDet as in Segment Anything, scaled down: 4x4-token windows
_VIT_DET = {
    "hidden_size": 192, "num_layers": 4, "intermediate_dim": 768,
    "num_heads": 3, "global_attention_layer_indices": [1, 3],
    "window_size": 4, "num_output_channels": 128,
}  # fmt: skip
_FP32_COSINE = 0.9999


@pytest.fixture(scope="module")
def gpu_adapter():
    verdict = gpu_probe.gpu_verdict()
    if not verdict.usable:
        pytest.skip(
            f"no usable GPU adapter ({verdict.reason[:200]}); run "
            "benchmarks/gpu/install_software_vulkan.sh and source its "
            "env.sh, as .ci/stages/gpu.sh does"
        )
    return verdict


def _export(model, size, out):
    kwargs = {}
    if model == "vit_det_small":
        kwargs = {
            "name": model,
            "config": {**_VIT_DET, "image_shape": [size, size, 3]},
        }
    preset = "mit_b0" if model == "mit_b0" else "sam_vit_base"
    records = export(
        preset, image_size=size, modes="fp32", targets="gpu",
        random_weights=True, out=out, num_threads=1, **kwargs,
    )  # fmt: skip
    return {r.mode: r for r in records}


@pytest.mark.parametrize(
    "model, size",
    [("mit_b0", 64), ("mit_b0", 128), ("vit_det_small", 64),
     ("vit_det_small", 128)],
)  # fmt: skip
def test_gpu_artifact_runs_fully_on_the_gpu(gpu_adapter, tmp_path, model, size):
    records = _export(model, size, tmp_path)
    gpu_run = records["gpu"].metadata["graph"]["gpu_run"]
    assert gpu_run["status"] == "ran" and gpu_run["fully_delegated"] is True
    assert gpu_run["device"] == gpu_adapter.device
    gpu = EdgeModel(records["gpu"].path, delegates=("gpu",), strict=True)
    assert gpu.active_delegate == "gpu" and gpu.fully_delegated is True
    assert gpu.cpu_ops == []
    fp32 = EdgeModel(records["fp32"].path, delegates=("xnnpack",))
    x = np.random.default_rng(0).normal(size=fp32.input_spec.shape)
    x = x.astype(np.float32)
    on_gpu, on_cpu = gpu(x), fp32(x)
    cosines = {n: cosine(on_gpu[n], on_cpu[n]) for n in on_cpu}
    print(
        f"GPU-CHECK {model} {size}px on {gpu_adapter.device}: fully "
        f"delegated {gpu.fully_delegated}; cosine vs fp32 on XNNPACK "
        + ", ".join(f"{n} {c:.6f}" for n, c in cosines.items())
    )
    assert sorted(on_gpu) == sorted(on_cpu)
    assert min(cosines.values()) >= _FP32_COSINE, cosines


@pytest.fixture(scope="module")
def five_d_model(tmp_path_factory):
    """A graph the GPU delegate refuses in part: a 5-D RESHAPE/TRANSPOSE."""
    import tensorflow as tf

    class FiveD(tf.Module):
        @tf.function(
            input_signature=[tf.TensorSpec([1, 8, 8, 4], tf.float32, "images")]
        )
        def __call__(self, x):
            y = tf.reshape(tf.nn.relu(x) * 2.0, [1, 2, 4, 8, 4])
            y = tf.transpose(y, [0, 2, 1, 3, 4])
            return {"P1": tf.reshape(y, [1, 8, 8, 4]) + 1.0}

    module = FiveD()
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [module.__call__.get_concrete_function()], module
    )
    path = tmp_path_factory.mktemp("five_d") / "five_d.tflite"
    path.write_bytes(converter.convert())
    return path


def test_the_runtime_reports_ops_the_gpu_left_to_the_cpu(
    gpu_adapter, five_d_model
):
    model = EdgeModel(five_d_model, delegates=("gpu",), strict=True)
    # LiteRT's is_fully_accelerated() says True for this graph
    assert model.active_delegate == "gpu"
    assert model.fully_delegated is False
    assert "TRANSPOSE" in model.cpu_ops and "RESHAPE" in model.cpu_ops
    x = np.random.default_rng(0).normal(size=(1, 8, 8, 4)).astype(np.float32)
    reference = EdgeModel(five_d_model)(x)["P1"]
    np.testing.assert_allclose(model(x)["P1"], reference, rtol=1e-5)


def test_the_gpu_check_fails_naming_the_ops_that_fell_back(
    gpu_adapter, five_d_model
):
    x = np.zeros((1, 8, 8, 4), np.float32)
    with pytest.raises(ExportError) as caught:
        gpu_check.run_on_gpu(
            five_d_model, [x[0]], {"P1": np.ones((1, 8, 8, 4))}, 0.999,
            "gpu", "five_d.tflite",
        )  # fmt: skip
    message = str(caught.value)
    assert "not fully accelerated" in message
    assert "'TRANSPOSE': 1" in message and "Tensor dimensions" in message
    assert gpu_adapter.device in message
