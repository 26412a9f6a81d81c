"""Shared fixtures. Tests use tiny configs; full-size models are `large`."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pathlib  # noqa: E402

import pytest  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent


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
