"""The README's quickstart command, run as written (its artifacts go to a
temporary folder), so the README breaks a test when its command stops
working."""

import json
import os
import re
import shlex
import subprocess
import sys

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

from edge_backbones.exporter import recipes
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.matrix_stage

# what TensorFlow, XLA and LiteRT print from C++ on a first export (CUDA
# probe, oneDNN notice, the MLIR quantizer's settings, LiteRT INFO lines,
# absl's pre-init notice and its I/W/E-prefixed lines)
NATIVE_NOISE = (
    r"cuInit",
    r"cudart_stub",
    r"oneDNN custom operations",
    r"rebuild TensorFlow with the appropriate compiler flags",
    r"fully_quantize: ",
    r"absl::InitializeLog",
    r"(?m)^[IWE]\d{4} \d\d:\d\d:\d\d",
    r"(?m)^INFO: ",
    r"(?m)^WARNING:absl:",
)


def _quickstart_command():
    """The first `edge-backbones ...` command in README.md, as argv."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    # the indented command line, after any `pip install ... &&`
    found = re.search(r"^ {4}(?:.*&& )?(edge-backbones .+)$", readme, re.M)
    assert found, "README.md shows no `edge-backbones` command"
    return shlex.split(found.group(1))


def _console_script(name):
    """argv that runs the console script `name` with this interpreter, as
    pyproject.toml's [project.scripts] declares it."""
    with open(REPO_ROOT / "pyproject.toml", "rb") as f:
        scripts = tomllib.load(f)["project"]["scripts"]
    module, function = scripts[name].split(":")
    code = (
        f"import sys; from {module} import {function}; sys.exit({function}())"
    )
    return [sys.executable, "-c", code]


def test_readme_quickstart_exports_verified_artifacts(tmp_path):
    command = _quickstart_command()
    assert command[:2] == ["edge-backbones", "export"], command
    recipe = command[command.index("--recipe") + 1]
    argv = _console_script(command[0]) + command[1:] + ["--out", str(tmp_path)]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    run = subprocess.run(
        argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    # at default verbosity only the package's own lines
    for noise in NATIVE_NOISE:
        assert not re.search(noise, run.stdout + run.stderr), noise
    assert re.search(r"^int8: verifying on \d+ held-out images$", run.stderr,
                     re.M), run.stderr  # fmt: skip
    assert re.search(r"^export: done in ", run.stderr, re.M), run.stderr
    # what the recipe asks for is what was written, each verified
    (job,) = recipes.load_recipes(REPO_ROOT / recipe)
    written = run.stdout.split()
    assert len(written) == len(job["modes"]) + len(job["targets"]), written
    for path in written:
        assert os.path.dirname(path) == str(tmp_path)
        with open(path[: -len(".tflite")] + ".json") as f:
            metadata = json.load(f)
        mode = metadata["mode"]
        assert mode in job["modes"] + job["targets"]
        gate = metadata["fidelity"]["min_cosine"]
        assert gate == job.get("thresholds", {}).get(mode, gate)
        for level in metadata["fidelity"]["levels"].values():
            assert level["cosine"] >= gate, (mode, level)
    # the artifacts and their sidecars, nothing else
    stems = [os.path.basename(path)[: -len(".tflite")] for path in written]
    assert sorted(os.listdir(tmp_path)) == sorted(
        stem + suffix for stem in stems for suffix in (".tflite", ".json")
    )
