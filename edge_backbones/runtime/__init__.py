"""The TensorFlow-free runtime: numpy, OpenCV and one TFLite interpreter.

`EdgeModel` runs an exported backbone and returns its pyramid levels by
name; `benchmark` times it; `load_image` and `preprocess` are the one
preprocessing implementation the exporter's calibration shares.
"""

from edge_backbones.runtime.backends import BACKENDS, load_backend
from edge_backbones.runtime.delegates import (
    KNOWN_DELEGATES,
    DelegateFallbackWarning,
)
from edge_backbones.runtime.edge_model import EdgeModel, TensorSpec
from edge_backbones.runtime.metadata import read_metadata
from edge_backbones.runtime.model_file import read_model_file
from edge_backbones.runtime.preprocess import load_image, preprocess
from edge_backbones.runtime.sam_predictor import SamPredictor

__all__ = [
    "BACKENDS",
    "KNOWN_DELEGATES",
    "DelegateFallbackWarning",
    "EdgeModel",
    "TensorSpec",
    "load_backend",
    "load_image",
    "preprocess",
    "read_metadata",
    "read_model_file",
    "SamPredictor",
]
