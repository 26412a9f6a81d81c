"""Trying a GPU that is not usable never kills or poisons the process.

The probe runs LiteRT's GPU accelerator in a child process; these tests
run the whole fallback in a child that has TensorFlow loaded too (where
Debian 12's lavapipe used to abort the interpreter at exit), under the
Vulkan setups a machine may have. `.ci/stages/gpu.sh` runs this file again
with Debian 12's lavapipe and with a usable software driver selected.
"""

import ctypes
import json
import os
import subprocess
import sys

import pytest

from edge_backbones.errors import DelegateUnavailableError
from edge_backbones.runtime import EdgeModel, gpu_probe
from tests.conftest import REPO_ROOT
from tests.runtime.conftest import gpu_fallback

_TRY_GPU_WITH_TENSORFLOW = """
import json, sys, warnings
import numpy as np
import tensorflow  # noqa: F401 - the abort at exit needed it loaded
from edge_backbones.runtime import DelegateFallbackWarning, EdgeModel

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    model = EdgeModel(sys.argv[1], delegates=("gpu", "xnnpack"))
x = np.arange(16, dtype=np.float32).reshape(model.input_spec.shape)
assert np.array_equal(model(x)["y"], 2 * x)  # the graph is y = x + x
print(json.dumps({
    "active": model.active_delegate,
    "fallbacks": [str(w.message) for w in caught
                  if issubclass(w.category, DelegateFallbackWarning)],
}))
"""


def _has_vulkan_loader():
    try:
        ctypes.CDLL("libvulkan.so.1")
    except OSError:
        return False
    return True


def _no_driver_env():
    if not _has_vulkan_loader():
        pytest.skip(
            "no Vulkan loader (libvulkan.so.1) here, so 'a loader without "
            "a driver' cannot be set up; install libvulkan1"
        )
    missing = "/nonexistent/icd.json"
    return {"VK_ICD_FILENAMES": missing, "VK_DRIVER_FILES": missing}


@pytest.fixture(scope="module")
def add_model(tmp_path_factory):
    """The probe's own one-op graph (y = x + x), built without TensorFlow."""
    pytest.importorskip("ai_edge_litert")
    path = tmp_path_factory.mktemp("add") / "add.tflite"
    path.write_bytes(gpu_probe._probe_model())
    return path


@pytest.mark.gpu_stage
@pytest.mark.parametrize("setup", ["this machine's", "loader, no driver"])
def test_trying_the_gpu_with_tensorflow_loaded_exits_cleanly(add_model, setup):
    env = dict(os.environ)
    env.pop("EDGE_BACKBONES_GPU_DELEGATE", None)
    if setup == "loader, no driver":
        env.update(_no_driver_env())
    result = subprocess.run(
        [sys.executable, "-c", _TRY_GPU_WITH_TENSORFLOW, add_model],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        timeout=300,
    )
    # 134 (SIGABRT in LiteRT's accelerator teardown) before the probe
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    if found["active"] == "gpu":  # a usable (maybe software) GPU
        assert setup == "this machine's" and found["fallbacks"] == []
    else:
        assert found["active"] == "xnnpack"
        assert len(found["fallbacks"]) == 1, found["fallbacks"]
        assert "no GPU adapter: " in found["fallbacks"][0]
        if setup == "loader, no driver":
            assert "/nonexistent/icd.json" in found["fallbacks"][0]


def _unusable(monkeypatch, reason="Vulkan featureX required"):
    verdict = gpu_probe.GpuVerdict(False, reason)
    monkeypatch.setattr(gpu_probe, "gpu_verdict", lambda: verdict)
    monkeypatch.delenv("EDGE_BACKBONES_GPU_DELEGATE", raising=False)


def test_an_unusable_gpu_is_never_loaded_in_process(add_model, monkeypatch):
    environment = pytest.importorskip("ai_edge_litert.environment")
    _unusable(monkeypatch)

    def must_not_run(*args, **kwargs):
        raise AssertionError("the GPU accelerator was loaded in-process")

    monkeypatch.setattr(environment.Environment, "create", must_not_run)
    model, fallbacks = gpu_fallback(add_model)
    assert model.active_delegate == "xnnpack"
    assert len(fallbacks) == 1
    assert "no GPU adapter: Vulkan featureX required" in fallbacks[0]
    with pytest.raises(DelegateUnavailableError, match="no GPU adapter"):
        EdgeModel(add_model, delegates=("gpu",), strict=True)


def test_the_verdict_is_probed_once_per_driver_setup(monkeypatch):
    probes = []

    def probe():
        probes.append(os.environ.get("VK_ICD_FILENAMES"))
        return gpu_probe.GpuVerdict(False, "test")

    monkeypatch.setattr(gpu_probe, "_probe", probe)
    gpu_probe.clear_cache()
    try:
        monkeypatch.setenv("VK_ICD_FILENAMES", "/a.json")
        gpu_probe.gpu_verdict()
        gpu_probe.gpu_verdict()
        monkeypatch.setenv("VK_ICD_FILENAMES", "/b.json")
        gpu_probe.gpu_verdict()
    finally:
        gpu_probe.clear_cache()
    assert probes == ["/a.json", "/b.json"]


def test_a_probe_that_crashes_or_hangs_is_a_no(monkeypatch):
    log = (
        "INFO: [environment.cc:36] Creating LiteRT environment\n"
        "Warning: Vulkan shaderUniform*ArrayDynamicIndexing required.\n"
        "ERROR: [delegate_webgpu.cc:359] Failed to initialize WebGPU "
        "environment: INTERNAL: No adapters found\n"
        "free(): invalid pointer\n"
    )
    # a verdict printed before the child died is not trusted either
    crashed = gpu_probe._read_verdict(
        -6, '{"usable": true, "reason": "", "native": false}\n', log
    )
    assert not crashed.usable
    assert "signal 6, SIGABRT" in crashed.reason
    assert "shaderUniform*ArrayDynamicIndexing required" in crashed.reason
    assert "No adapters found" in crashed.reason
    assert "INFO" not in crashed.reason
    # a child that said "no" and then aborted in teardown keeps its reason
    refused = gpu_probe._read_verdict(
        -6, '{"usable": false, "reason": "x", "native": true}\n', log
    )
    assert not refused.usable and "died" not in refused.reason
    assert refused.reason.startswith("Vulkan shaderUniform*ArrayDynamic")

    def hang(*args, **kwargs):
        raise subprocess.TimeoutExpired(args[0], kwargs["timeout"])

    monkeypatch.setattr(gpu_probe.subprocess, "run", hang)
    hung = gpu_probe._probe()
    assert not hung.usable and "did not finish" in hung.reason


def test_a_working_probe_names_its_adapter():
    log = (
        "I0000 00:00:1.0  1 environment.cc:532] Selected adapter: "
        "SwiftShader Device (Subzero), arch=swiftshader, vendor=google, "
        "backend=Vulkan, adapterType=CPU / Software\n"
    )
    verdict = gpu_probe._read_verdict(
        0, '{"usable": true, "reason": "", "native": false}\n', log
    )
    assert verdict.usable and verdict.software
    assert verdict.device == "SwiftShader Device (Subzero) (software Vulkan)"


def test_a_bad_probe_timeout_is_a_typed_error(monkeypatch):
    from edge_backbones.errors import InputError

    monkeypatch.setenv("EDGE_BACKBONES_GPU_PROBE_TIMEOUT", "soon")
    with pytest.raises(InputError, match="'soon' is not a number"):
        gpu_probe._probe()


def test_the_probe_loads_tensorflow_when_the_caller_has(monkeypatch):
    # Mesa 25's lavapipe passes a TensorFlow-free probe, then segfaults
    # compiling shaders in a process with TensorFlow loaded
    codes = []

    def child(args, **kwargs):
        codes.append(args[-1])
        return subprocess.CompletedProcess(args, -11, "", "")

    monkeypatch.setattr(gpu_probe.subprocess, "run", child)
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    gpu_probe.clear_cache()
    try:
        without = gpu_probe.gpu_verdict()
        monkeypatch.setitem(sys.modules, "tensorflow", object())
        with_tf = gpu_probe.gpu_verdict()
    finally:
        gpu_probe.clear_cache()
    assert len(codes) == 2  # a verdict without TensorFlow is not reused
    assert "import tensorflow" not in codes[0]
    assert "import tensorflow" in codes[1]
    assert "TensorFlow loaded" not in without.reason
    assert "SIGSEGV, with TensorFlow loaded" in with_tf.reason
