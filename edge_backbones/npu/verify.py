"""Compiled artifact vs its source: the NPU's simulated numerics on photos.

Runs the compiled file in its vendor's x86 simulation and the exported
artifact it came from on LiteRT's CPU (XNNPACK), on the same preprocessed
photos, and compares them level by level with the exporter's metrics. The
figures describe arithmetic only: the simulator's timings are not a
device's.
"""

import dataclasses
import os
import warnings

from edge_backbones.core.fidelity import compare, worst
from edge_backbones.core.image_sets import (
    CalibrationWarning,
    load_calibration_set,
)
from edge_backbones.errors import CalibrationError
from edge_backbones.runtime.npu_engines import NPU_NUMERICS_LABEL
from edge_backbones.runtime.preprocess import load_image

__all__ = ["NumericsCheck", "check_numerics", "holdout_paths"]


def holdout_paths(source, max_images):
    """The first `max_images` held-out photos of `source` (a folder or a
    manifest): never the photos an artifact was calibrated on, so its
    numerics are checked on images its ranges did not see."""
    with warnings.catch_warnings():
        # how many photos calibrate is the export's concern, not this check's
        warnings.simplefilter("ignore", CalibrationWarning)
        photos = load_calibration_set(source, decode=load_image)
    paths = photos.holdout[:max_images]
    if not paths:
        raise CalibrationError(
            f"{source!r} holds no held-out photo to check numerics on. Mark "
            'some photos "holdout" in its manifest.json.'
        )
    return paths


@dataclasses.dataclass
class NumericsCheck:
    path: str
    backend: str
    fidelity: dict  # core.fidelity.compare's dict, vs LiteRT CPU

    @property
    def worst_cosine(self):
        return worst(self.fidelity)[1]["cosine"]

    def record(self):
        """The metadata entry: what ran, against what, and the figures."""
        return {
            **self.fidelity,
            "label": NPU_NUMERICS_LABEL,
            "backend": self.backend,
            "reference": "source artifact on LiteRT CPU (XNNPACK)",
        }

    def summary(self):
        level, figures = worst(self.fidelity)
        return (
            f"{os.path.basename(self.path)}: {NPU_NUMERICS_LABEL} on "
            f"{self.backend} vs LiteRT CPU: cos {figures['cosine']:.5f}"
            f" ({level}), sqnr {figures['sqnr_db']:.1f} dB over "
            f"{self.fidelity['images']} images"
        )


def check_numerics(compiled_path, source_path, images, max_images=4):
    """Compares the compiled file (simulated) with the source on the CPU."""
    from edge_backbones.runtime.edge_model import EdgeModel

    simulated = EdgeModel(compiled_path)
    cpu = EdgeModel(source_path, delegates=("xnnpack",))
    inputs = [cpu.preprocess(p) for p in holdout_paths(images, max_images)]
    fidelity = compare(cpu.run_batch(inputs), simulated.run_batch(inputs))
    return NumericsCheck(compiled_path, simulated.npu_backend, fidelity)
