"""Builds one experiment case once: float .tflite graphs, calibration and
held-out arrays, and the Keras reference outputs, cached in a folder."""

import contextlib
import json
import os
import pickle
import sys

import numpy as np

from edge_backbones.exporter import calibration, graph, pipeline
from edge_backbones.exporter.convert import Converter
from edge_backbones.exporter.graph import write_saved_model
from edge_backbones.exporter.options import CalibrationOptions
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


GRAPHS = ("plain", "l2", "l2sm", "plainsm")


def load_case_backbone(case, size, seed=0):
    """A case's backbone: a CONFIGS name (random weights, `seed`) or a
    checkpoint folder (its own weights, e.g. benchmarks/peers' SegFormer)."""
    if case in CONFIGS:
        preset, config = CONFIGS[case]
        return pipeline.load_backbone(preset, True, (size, size), config, seed)[
            0
        ]
    return pipeline.load_backbone(case, False, (size, size))[0]


def build(case, size, folder, seed=0, graphs=GRAPHS):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "case.json"), "w") as f:
        json.dump([case, size], f)
    backbone = load_case_backbone(case, size, seed)
    prep = graph.model_preprocessing(backbone, False)
    calib = calibration.calibration_set(
        "calibration", seed, CalibrationOptions().holdout_fraction, 16,
    )  # fmt: skip
    holdout = calibration.holdout_arrays(calib, prep, (size, size))
    arrays = [
        a.astype(np.float32)
        for a in calibration.preprocessed(
            calib, "calibration", prep, (size, size)
        )
    ]
    serving = graph.serving_graph(backbone, (size, size), None, prep)
    reference = graph.reference_outputs(serving, holdout)
    forms = {
        "plain": (),
        "l2": (integer_layer_norm,),
        "l2sm": (integer_layer_norm, integer_softmax),
        "plainsm": (integer_softmax,),
    }
    for name in graphs:
        with contextlib.ExitStack() as stack:
            for form in forms[name]:
                stack.enter_context(form())
            saved = write_saved_model(
                serving, os.path.join(folder, f"sm_{name}")
            )
        dataset = calibration.representative_dataset(arrays, prep)
        conv = Converter(saved, dataset)
        with open(os.path.join(folder, f"fp32_{name}.tflite"), "wb") as f:
            f.write(conv.fp32())
    with open(os.path.join(folder, "data.pkl"), "wb") as f:
        pickle.dump(
            {"calib": arrays, "holdout": holdout, "reference": reference}, f
        )


if __name__ == "__main__":
    # setup_case.py CASE SIZE FOLDER [GRAPH,GRAPH...]; CASE is a CONFIGS
    # name or a checkpoint folder
    case, size, folder = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    graphs = sys.argv[4].split(",") if len(sys.argv) > 4 else GRAPHS
    build(case, size, folder, graphs=graphs)
