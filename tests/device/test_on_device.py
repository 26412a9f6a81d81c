"""The runtime-only install on the device computes what x86 computes."""

import importlib.util
import os
import sys

import numpy as np
import pytest

from tests.device.conftest import (
    BACKEND,
    DELEGATES,
    REFERENCE,
    artifact_paths,
)

ROWS = [
    (path.stem, delegate) for path in artifact_paths() for delegate in DELEGATES
] or [("no artifacts", "none")]
INT_ROWS = [r for r in ROWS if not r[0].endswith("_fp32")]


def test_no_tensorflow_in_the_runtime_install(device_ref):
    for package in ("tensorflow", "keras", "tf_keras"):
        assert importlib.util.find_spec(package) is None, package
    import edge_backbones.runtime  # noqa: F401

    assert "tensorflow" not in sys.modules
    # the installed wheel, not a source tree on sys.path
    import edge_backbones

    assert "site-packages" in edge_backbones.__file__


def test_edge_model_runs_on_the_named_backend(device_ref):
    from edge_backbones.runtime import EdgeModel, load_backend

    path = next(p for p in artifact_paths() if p.stem.endswith("_fp32"))
    model = EdgeModel(path, backend=BACKEND)
    assert model.backend.name == BACKEND
    package = {"litert": "ai_edge_litert", "tflite_runtime": "tflite_runtime"}
    assert model.backend.module.__name__.startswith(package[BACKEND])
    assert load_backend(BACKEND).version == model.backend.version != "?"
    out = model(np.zeros(model.input_spec.shape, np.float32))
    assert set(out) == set(model.metadata["outputs"])


@pytest.mark.parametrize("artifact,delegate", ROWS)
def test_outputs_match_x86_within_bounds(device_rows, artifact, delegate):
    from edge_backbones.runtime import parity

    if artifact in device_rows["unloadable"]:
        # only the frozen tflite-runtime may lack an op version, and the
        # error must say so and name the fix
        reason = device_rows["unloadable"][artifact]
        assert BACKEND == "tflite_runtime", reason
        assert "backend='litert'" in reason
        # a newer op version, or an int16 kernel 2.14 does not have (the
        # a16w8 npu's int16 RSQRT); never a crash (export/fc_bias.py)
        assert "op for builtin opcode" in reason or (
            artifact.endswith("_npu") and "Type INT16 is unsupported" in reason
        )
        return
    row = device_rows[(artifact, delegate)]
    kind, problems = parity.verdict(row)
    assert not problems, problems
    if row["mode"] in parity.FLOAT_MODES:
        for figures in row["levels"].values():
            assert figures["max_relative"] <= parity.MAX_FLOAT_RELATIVE


@pytest.mark.parametrize("artifact,delegate", INT_ROWS)
def test_int8_fidelity_is_measured_here_and_meets_the_gate(
    device_rows, device_ref, artifact, delegate
):
    from edge_backbones.runtime import parity, read_metadata
    from edge_backbones.runtime.model_file import read_model_file

    if artifact in device_rows["unloadable"]:
        return  # checked in test_outputs_match_x86_within_bounds
    row = device_rows[(artifact, delegate)]
    assert row["mode"] not in parity.FLOAT_MODES
    path = os.path.join(device_ref, "artifacts", f"{artifact}.tflite")
    gate = read_metadata(path, read_model_file(path))["fidelity"]["min_cosine"]
    for figures in row["levels"].values():
        assert figures["fidelity"] >= gate, (figures["fidelity"], gate)


def test_a_known_tflite_runtime_crash_is_refused(device_ref):
    """An int8 FULLY_CONNECTED with per-channel weights and no bias (what
    exports made before export/fc_bias.py hold) crashes tflite-runtime
    2.14 on aarch64: EdgeModel must refuse it with the fix, not segfault."""
    from edge_backbones.errors import ModelFileError
    from edge_backbones.runtime import EdgeModel

    path = os.path.join(device_ref, "legacy", "fc_int8_no_bias.tflite")
    if BACKEND != "tflite_runtime" or os.uname().machine != "aarch64":
        model = EdgeModel(path, backend=BACKEND)  # others run it
        out = model(np.zeros(model.input_spec.shape, np.float32))
        assert all(np.isfinite(v).all() for v in out.values())
        return
    with pytest.raises(ModelFileError, match="no bias") as error:
        EdgeModel(path, backend=BACKEND)
    assert "backend='litert'" in str(error.value)
    assert "Export it again" in str(error.value)


def test_tflite_runtime_portable_kernels_are_refused_on_int8_fcs(device_ref):
    from edge_backbones.errors import DelegateUnavailableError
    from edge_backbones.runtime import EdgeModel

    path = next(p for p in artifact_paths() if p.stem.endswith("_npu_int8"))
    if BACKEND != "tflite_runtime":  # a tflite-runtime 2.14 fault only
        model = EdgeModel(path, ("portable",), backend=BACKEND, strict=True)
        assert model.active_delegate == "portable"
        return
    with pytest.raises(DelegateUnavailableError, match="per-channel scales"):
        EdgeModel(path, ("portable",), backend=BACKEND, strict=True)


def test_segmenter_masks_match_x86(device_ref):
    """The tiny segmenter's class maps here against x86's (the same
    interpreter package's): the share of pixels with the same class
    (float: all but rounding ties). Integer kernels round differently on
    ARM: within 1 %, or where the artifact's own int8 error moves more
    pixels (its mask agreement with the float model, from its metadata),
    no more pixels than that error does: random tiny weights leave 150
    classes' logits nearly tied (tflite-runtime's int8_mixed: 96.5 % on
    emulated A72/A76, 100 % through LiteRT; int8 vs float 95.4 %)."""
    from edge_backbones.core.segmentation_metrics import mask_agreement
    from edge_backbones.runtime import parity, read_metadata
    from edge_backbones.runtime.model_file import read_model_file

    folder = device_ref / "segmenter"
    paths = sorted(str(p) for p in (folder / "artifacts").glob("*.tflite"))
    assert paths, f"no segmenter artifacts in {folder}"
    x86 = parity.load_run(folder, REFERENCE)["outputs"]
    here = parity.run_artifacts(
        paths,
        parity.load_arrays(folder / "inputs.npz"),
        backend=BACKEND,
        delegates=("xnnpack",),
        isolate=BACKEND == "tflite_runtime",
    )
    scored = 0
    for stem, info in here["info"]["artifacts"].items():
        key = f"{stem}/xnnpack/classes"
        agreement = mask_agreement(here["outputs"][key], x86[key])
        floor = 0.999
        if info["mode"] not in parity.FLOAT_MODES:
            path = folder / "artifacts" / f"{stem}.tflite"
            task = read_metadata(path, read_model_file(path))["task"]
            int8 = task["verification"]["mask_agreement"]["mean"]
            floor = min(0.99, int8)
        print(f"{stem}: mask agreement with x86 {100 * agreement:.3f} %")
        assert agreement >= floor, (stem, agreement)
        scored += 1
    # only tflite-runtime 2.14, which crashes on some int8 graphs, skips
    assert scored == len(paths) or BACKEND == "tflite_runtime"


def test_sam_pair_masks_match_x86(device_ref):
    """The tiny SAM pair through `SamPredictor` here against x86 (the same
    interpreter package's run): every mask of every prompt, with and
    without a mask input, by mask IoU; scores as close. Float pairs agree
    to the pixel; int8_mixed keeps its int8 kernels' rounding, which moves
    a few pixels of a few-pixel mask at most."""
    from benchmarks.pi import sam_pair
    from edge_backbones.runtime import parity

    folder = device_ref / "sam"
    here = sam_pair.predictions(folder, BACKEND)
    assert here, f"no SAM pairs in {folder}"
    x86 = parity.load_arrays(folder / f"{REFERENCE}.npz")
    assert sorted(here) == sorted(x86)
    floors = {"fp32": (0.999, 0.99, 1e-4), "int8_mixed": (0.99, 0.9, 0.02)}
    for mode in {key.split("/")[0] for key in here}:
        mean_floor, worst_floor, score_error = floors[mode]
        ious = np.concatenate(
            [
                iou.reshape(-1)
                for key, iou in sam_pair.mask_ious(here, x86).items()
                if key.startswith(f"{mode}/")
            ]
        )
        errors = [
            np.abs(here[key] - x86[key]).max()
            for key in here
            if key.startswith(f"{mode}/") and key.endswith("scores")
        ]
        print(
            f"sam {mode}: mask IoU vs x86 mean {ious.mean():.5f}, worst "
            f"{ious.min():.5f} ({ious.size} masks); score error "
            f"{max(errors):.2g}"
        )
        assert ious.mean() >= mean_floor and ious.min() >= worst_floor
        assert max(errors) <= score_error
