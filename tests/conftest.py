"""Shared fixtures. Tests use tiny configs; full-size models are `large`."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pathlib  # noqa: E402

import pytest  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent

# each xdist worker imports TensorFlow and converts models: ~3 GiB at peak
WORKER_MEMORY_BYTES = 3 * 2**30


# optional: the Pi's runtime-only venvs run these tests without xdist
@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config):
    """`-n auto`: one worker per core, as many as memory holds (at least
    one), so a many-core laptop does not run out of memory."""
    cores = len(os.sched_getaffinity(0))
    pages = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return max(1, min(cores, pages // WORKER_MEMORY_BYTES))


@pytest.fixture(scope="session")
def repo_root():
    return REPO_ROOT


@pytest.fixture(scope="session")
def tiny_backbone():
    """`tests.tiny.TinyBackbone` (dim 8, 32x32), seeded and named."""
    import keras

    from tests.tiny import TinyBackbone

    keras.utils.set_random_seed(0)
    # named, so artifact names do not depend on what Keras built before
    return TinyBackbone(dim=8, name="tiny_backbone")


@pytest.fixture(scope="session")
def calibration_dir():
    """The real photos we ship in calibration/."""
    return REPO_ROOT / "calibration"


@pytest.fixture(scope="session")
def tiny_sam_export(tmp_path_factory):
    """A tiny random `SamModel` checkpoint exported by the CLI in fp32 and
    fp16, encoder and decoder: (checkpoint, out folder, the CLI's exit
    code, its stdout, its stderr)."""
    import contextlib
    import io

    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from edge_backbones.cli import main
    from tests.tiny import save_tiny_sam_model

    checkpoint = tmp_path_factory.mktemp("sam") / "tiny_sam"
    save_tiny_sam_model(str(checkpoint))
    out = tmp_path_factory.mktemp("sam_export")
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(
            ["export", str(checkpoint), "--image-size", "64",
             "--modes", "fp32,fp16", "--out", str(out)]
        )  # fmt: skip
    return checkpoint, out, code, stdout.getvalue(), stderr.getvalue()
