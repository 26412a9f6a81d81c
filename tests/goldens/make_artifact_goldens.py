"""Regenerates tests/goldens/artifacts/: the sidecar of every target.

    PYTHONPATH=. python tests/goldens/make_artifact_goldens.py

Each file is the sidecar JSON of a real export of the tiny backbone
(`tests.tiny.TinyBackbone`, 32x32, the shipped calibration photos), one per
target, plus the `npu` artifact compiled ahead of time for SM8650 (needs the
npu extra). The Python tests (tests/test_artifact_schema.py) and the Kotlin
`:core` tests (`ArtifactGoldensTest`) validate every one against
edge_backbones/core/artifact.schema.json and parse it.
"""

import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(HERE, "artifacts")
# the registry's targets and modes a user picks (modes.toml)
TARGETS = (
    "fp32", "fp16", "cpu", "int8", "int8_io", "int8_mixed", "npu",
    "npu_int8", "gpu",
)  # fmt: skip
DEVICE_TARGETS = ("cpu", "npu", "npu_int8", "gpu")  # the rest are modes
COMPILE_SOC = "SM8650"


def _export(target, out):
    import keras

    from edge_backbones.exporter.pipeline import export
    from tests.tiny import TinyBackbone

    keras.utils.set_random_seed(0)
    kind = "targets" if target in DEVICE_TARGETS else "modes"
    (record,) = export(
        TinyBackbone(dim=8, image_shape=(32, 32, 3)),
        image_size=32,
        **{kind: target},
        # relative: the metadata records it as given (fidelity.holdout)
        calibration="calibration",
        out=out,
        name="tiny",
        max_images=8,
        # random weights on a toy: only a broken conversion falls this low
        thresholds={target: 0.95},
    )
    return record.path


def _sidecar(path):
    return os.path.splitext(path)[0] + ".json"


def _compile(path, out):
    """`edge-backbones compile PATH --soc SM8650 --images calibration`: the
    compiled file with its simulated numerics vs the CPU."""
    from edge_backbones.cli import main as cli_main

    argv = ["compile", path, "--soc", COMPILE_SOC, "--images", "calibration",
            "--out", out]  # fmt: skip
    if cli_main(argv) != 0:
        raise SystemExit(f"edge-backbones {' '.join(argv)} failed")
    stem = os.path.splitext(os.path.basename(path))[0]
    return os.path.join(out, f"{stem}_{COMPILE_SOC}.tflite")


def main(targets=TARGETS):
    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="artifact_goldens_") as work:
        paths = {}
        for target in targets:
            paths[target] = _export(target, os.path.join(work, target))
            shutil.copyfile(
                _sidecar(paths[target]), os.path.join(OUT, f"{target}.json")
            )
            print(f"{target}: {os.path.join(OUT, target + '.json')}")
        if "npu" in paths:
            compiled = _compile(paths["npu"], os.path.join(work, "compiled"))
            target = os.path.join(OUT, f"npu_compiled_{COMPILE_SOC}.json")
            shutil.copyfile(_sidecar(compiled), target)
            print(f"compile: {target}")


if __name__ == "__main__":
    sys.path.insert(0, REPO)
    os.chdir(REPO)
    main(tuple(sys.argv[1:]) or TARGETS)
