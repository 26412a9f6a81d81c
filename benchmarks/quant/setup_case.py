"""Builds one experiment case once: float .tflite graphs, calibration and
held-out arrays, and the Keras reference outputs, cached in a folder."""

import json
import os
import pickle
import sys

import numpy as np

from edge_backbones.export import pipeline
from edge_backbones.export.convert import Converter
from edge_backbones.export.graph import write_saved_model
from edge_backbones.models.layers import integer_layer_norm, integer_softmax

CONFIGS = {
    "mit_b0": ("mit_b0", None),
    "vitdet_small": (
        "sam_vit_base",
        {
            "hidden_size": 96,
            "num_layers": 4,
            "intermediate_dim": 384,
            "num_heads": 3,
            "global_attention_layer_indices": [1, 3],
            "patch_size": 16,
            "num_output_channels": 64,
            "window_size": 14,
        },
    ),  # fmt: skip
    "sam_vit_base": ("sam_vit_base", None),
}


def build(case, size, folder, seed=0):
    preset, config = CONFIGS[case]
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "case.json"), "w") as f:
        json.dump([case, size], f)
    backbone, _, _ = pipeline.load_backbone(
        preset, True, (size, size), config, seed
    )
    prep = pipeline._preprocessing(backbone, False)
    calib = pipeline._calibration_set(
        "calibration", seed, pipeline.DEFAULT_HOLDOUT_FRACTION, 16,
    )  # fmt: skip
    holdout = pipeline._holdout(calib, prep, (size, size))
    arrays = [
        a.astype(np.float32)
        for a in calib.arrays("calibration", prep, (size, size))
    ]
    serving = pipeline._serving(backbone, (size, size), None, prep)
    reference = pipeline._reference(serving, holdout)
    plain = write_saved_model(serving, os.path.join(folder, "sm_plain"))
    with integer_layer_norm():
        l2 = write_saved_model(serving, os.path.join(folder, "sm_l2"))
        with integer_softmax():
            l2sm = write_saved_model(serving, os.path.join(folder, "sm_l2sm"))
    with integer_softmax():
        plainsm = write_saved_model(serving, os.path.join(folder, "sm_plainsm"))
    graphs = {"plain": plain, "l2": l2, "l2sm": l2sm, "plainsm": plainsm}
    for name, saved in graphs.items():
        conv = Converter(saved, pipeline._representative_dataset(arrays, prep))
        with open(os.path.join(folder, f"fp32_{name}.tflite"), "wb") as f:
            f.write(conv.fp32())
    with open(os.path.join(folder, "data.pkl"), "wb") as f:
        pickle.dump(
            {"calib": arrays, "holdout": holdout, "reference": reference}, f
        )


if __name__ == "__main__":
    case, size, folder = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    build(case, size, folder)
