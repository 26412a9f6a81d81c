"""A case with MiT's attention value -> proj migration, exact in float.

python benchmarks/quant/migrate_value_proj.py SOURCE DEST ALPHA SHIFT

Per block and channel c of the attention output (proj's input), from its
calibration min/max: centre m_c (SHIFT 1, else 0) and scale s_c =
half-range_c^ALPHA / max|proj row c|^(1 - ALPHA) (geometric mean 1;
ALPHA 0: no scaling). value's kernel columns and bias become
(W, b - m) / s and proj's rows W * s, its bias b + m @ W: softmax rows sum
to 1, so attention(v - m) = attention(v) - m and the float model is
unchanged (the script prints how far its outputs moved). DEST gets the
plain graph, its fp32 .tflite and SOURCE's data (same reference).
"""

import json
import os
import pickle
import re
import sys

import numpy as np
from evaluate import load
from setup_case import load_case_backbone

from edge_backbones.exporter import graph
from edge_backbones.exporter.convert import Converter
from edge_backbones.exporter.graph import write_saved_model

PROJ_INPUT = re.compile(
    r"(stage\d_block\d+)_attention_1/proj_1/Tensordot/MatMul1$"
)


def proj_input_ranges(folder, images):
    """{block: (per-channel min, per-channel max)} of proj's input."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(
        model_path=f"{folder}/fp32_plain.tflite",
        experimental_preserve_all_tensors=True,
        num_threads=2,
    )
    interpreter.allocate_tensors()
    tensors = [
        (PROJ_INPUT.search(d["name"]).group(1), d["index"])
        for d in interpreter.get_tensor_details()
        if PROJ_INPUT.search(d["name"])
    ]
    entry = interpreter.get_input_details()[0]["index"]
    found = {}
    for image in images:
        interpreter.set_tensor(entry, image[None])
        interpreter.invoke()
        for block, index in tensors:
            value = interpreter.get_tensor(index)
            value = value.reshape(-1, value.shape[-1])
            low, high = found.get(block, (np.inf, -np.inf))
            found[block] = (
                np.minimum(low, value.min(0)),
                np.maximum(high, value.max(0)),
            )
    return found


def migrate(backbone, ranges, alpha, shift):
    for block, (low, high) in ranges.items():
        attention = backbone.get_layer(f"{block}_attention")
        wv, bv = (w.numpy() for w in attention.value.weights)
        wp, bp = (w.numpy() for w in attention.proj.weights)
        centre = (high + low) / 2 if shift else np.zeros_like(low)
        half = np.maximum((high - low) / 2, 1e-6)
        scale = half**alpha / np.abs(wp).max(1) ** (1 - alpha)
        scale = scale / np.exp(np.mean(np.log(scale))) if alpha else 1.0
        scale = np.broadcast_to(scale, half.shape)
        attention.value.set_weights([wv / scale, (bv - centre) / scale])
        attention.proj.set_weights([wp * scale[:, None], bp + centre @ wp])


def main(source, dest, alpha, shift):
    case, size = json.load(open(f"{source}/case.json"))
    data = load(source)
    backbone = load_case_backbone(case, size)
    migrate(backbone, proj_input_ranges(source, data["calib"]), alpha, shift)
    prep = graph.model_preprocessing(backbone, False)
    serving = graph.serving_graph(backbone, (size, size), None, prep)
    moved = graph.reference_outputs(serving, data["holdout"])
    for level, value in moved.items():
        print(
            f"{level}: float outputs moved by at most "
            f"{np.abs(value - data['reference'][level]).max():.2e}"
        )
    os.makedirs(dest, exist_ok=True)
    with open(f"{dest}/case.json", "w") as f:
        json.dump([case, size], f)
    saved = write_saved_model(serving, f"{dest}/sm_plain")
    with open(f"{dest}/fp32_plain.tflite", "wb") as f:
        f.write(Converter(saved).fp32())
    with open(f"{dest}/data.pkl", "wb") as f:
        pickle.dump(data, f)


if __name__ == "__main__":
    source, dest, alpha, shift = sys.argv[1:5]
    main(source, dest, float(alpha), shift == "1")
