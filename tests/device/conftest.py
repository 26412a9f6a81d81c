"""Device tests: the runtime on another machine, against x86 outputs.

They run where the package is installed runtime-only (the emulated Pi of
`.ci/stages/pi.sh`, or a real Pi) on the folder that
`benchmarks/pi/make_artifacts.py` wrote on x86, named by
EDGE_BACKBONES_DEVICE_REF; EDGE_BACKBONES_DEVICE_BACKEND names the
interpreter package under test (litert or tflite_runtime).
Without that folder they skip: only the stage (or a user) can provide it.
"""

import os
import pathlib

import pytest

REF = os.environ.get("EDGE_BACKBONES_DEVICE_REF")
BACKEND = os.environ.get("EDGE_BACKBONES_DEVICE_BACKEND")
# tflite-runtime's portable kernels compute our int8 FCs wrong (EdgeModel
# refuses them, test_on_device); its runs compare with x86 tflite-runtime
DELEGATES = (
    ("xnnpack", "cpu", "portable")
    if BACKEND == "litert"
    else ("xnnpack", "cpu")
)
REFERENCE = "x86" if BACKEND == "litert" else f"x86_{BACKEND}"


def artifact_paths():
    if not REF:
        return []
    return sorted((pathlib.Path(REF) / "artifacts").glob("*.tflite"))


@pytest.fixture(scope="session")
def device_ref():
    if not REF or not BACKEND:
        pytest.skip(
            "EDGE_BACKBONES_DEVICE_REF / EDGE_BACKBONES_DEVICE_BACKEND are "
            "not set: device tests run in .ci/stages/pi.sh (emulated Pi) or "
            "on a Pi (docs/raspberry_pi.md)"
        )
    return pathlib.Path(REF)


@pytest.fixture(scope="session")
def device_rows(device_ref):
    """`parity.compare` rows of this machine against the x86 run, by
    (artifact, delegate), plus "unloadable": {artifact: reason}. The run is
    saved as EDGE_BACKBONES_DEVICE_RUN (if set) beside the x86 one, for
    `benchmarks/pi/compare.py table`."""
    from edge_backbones.runtime import parity

    inputs = parity.load_arrays(device_ref / "inputs.npz")
    paths = [str(p) for p in artifact_paths()]
    # tflite-runtime 2.14 segfaults on some graphs: probe in a child first
    run = parity.run_artifacts(
        paths,
        inputs,
        backend=BACKEND,
        delegates=DELEGATES,
        isolate=BACKEND != "litert",
    )
    name = os.environ.get("EDGE_BACKBONES_DEVICE_RUN")
    if name:
        parity.save_run(device_ref, name, run)
    reference = parity.load_run(device_ref, REFERENCE)
    rows = parity.compare(reference, run)
    by_key = {(row["artifact"], row["delegate"]): row for row in rows}
    by_key["unloadable"] = run["info"]["unloadable"]
    return by_key
