"""`compile --images` checks numerics on held-out photos only."""

import json
import os

import numpy as np

from edge_backbones.npu import verify
from edge_backbones.runtime import edge_model


class _FakeModel:
    """Records which photos were fed; returns one level per image."""

    seen = []

    def __init__(self, path, delegates=None):
        self.npu_backend = "fake simulator"

    def preprocess(self, path):
        _FakeModel.seen.append(os.path.basename(path))
        return np.full((1, 2, 2, 3), len(_FakeModel.seen), np.float32)

    def run_batch(self, inputs):
        return {"P1": np.concatenate(inputs)}


def test_compile_images_uses_the_manifests_holdout_split(
    calibration_dir, monkeypatch
):
    monkeypatch.setattr(edge_model, "EdgeModel", _FakeModel)
    _FakeModel.seen.clear()
    check = verify.check_numerics(
        "compiled.tflite", "source.tflite", str(calibration_dir), max_images=4
    )
    with open(calibration_dir / "manifest.json", encoding="utf-8") as f:
        splits = {p["file"]: p["split"] for p in json.load(f)["photos"]}
    assert len(_FakeModel.seen) == 4
    assert {splits[name] for name in _FakeModel.seen} == {"holdout"}
    assert check.fidelity["images"] == 4
