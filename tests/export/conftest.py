"""Export fixtures: a folder of photos to calibrate on (the tiny backbone
is `tiny_backbone`, in tests/conftest.py)."""

import cv2
import numpy as np
import pytest

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@pytest.fixture(scope="session")
def photos(calibration_dir, tmp_path_factory):
    """The bundled calibration photos; synthetic scenes until they exist."""
    if (
        calibration_dir.is_dir()
        and sum(
            p.suffix.lower() in IMAGE_SUFFIXES
            for p in calibration_dir.rglob("*")
        )
        >= 8
    ):
        return calibration_dir
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(10):
        # smooth gradients + a few shapes: photo-like statistics, not noise
        y, x = np.mgrid[0:96, 0:128].astype(np.float32)
        image = np.stack(
            [x * rng.uniform(0.5, 2), y * rng.uniform(0.5, 2), x + y], -1
        )
        for _ in range(4):
            center = (int(rng.integers(0, 128)), int(rng.integers(0, 96)))
            color = [float(c) for c in rng.integers(0, 255, 3)]
            cv2.circle(image, center, int(rng.integers(5, 30)), color, -1)
        image = np.clip(image, 0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / f"scene_{i}.jpg"), image)
    return folder
