"""One quantization variant of a prepared case -> .tflite + figures (JSON).

python benchmarks/quant/run_variant.py FOLDER VARIANT
"""

import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from evaluate import evaluate, load  # noqa: E402
from setup_case import load_case_backbone  # noqa: E402


def tf_int8(folder, data, graph, ranges="minmax", io="int8"):
    from edge_backbones.exporter.convert import Converter

    def dataset():
        for x in data["calib"]:
            yield {"images": x[None]}

    conv = Converter(f"{folder}/sm_{graph}", dataset)
    return conv.int8(io_dtype=io, ranges=ranges)


def tf_mixed(folder, data, ranges):
    from edge_backbones.core import modes
    from edge_backbones.exporter.convert import Converter
    from edge_backbones.exporter.quant_debug import scheme_float_nodes

    case, size = json.load(open(f"{folder}/case.json"))
    backbone = load_case_backbone(case, size)

    def dataset():
        for x in data["calib"]:
            yield {"images": x[None]}

    conv = Converter(f"{folder}/sm_plain", dataset)
    mixed = modes.MODE_PLANS["int8_mixed"]
    types, names = scheme_float_nodes(conv.fp32(), backbone, mixed)
    return conv.int8(
        float_ops=mixed.float_ops, float_nodes=types + names, ranges=ranges
    )


def tf_int16x8(folder, data, graph):
    from edge_backbones.exporter.convert import Converter

    def dataset():
        for x in data["calib"]:
            yield {"images": x[None]}

    return Converter(f"{folder}/sm_{graph}", dataset).int16x8()


def main():
    folder, variant = sys.argv[1], sys.argv[2]
    data = load(folder)
    started = time.time()
    kind, graph, *rest = variant.split(":")
    plan = "npu"
    if kind == "tf":
        content = tf_int8(folder, data, graph, ":".join(rest) or "minmax")
    elif kind == "mixed":
        content, plan = tf_mixed(folder, data, ":".join(rest) or "minmax"), "x"
    elif kind == "dynamic":
        from edge_backbones.exporter.convert import Converter

        content = Converter(f"{folder}/sm_{graph}").dynamic()
        plan = "x"
    elif kind == "tf16":
        content, plan = tf_int16x8(folder, data, graph), "int16x8"
    elif kind == "fp32":
        content, plan = (
            open(f"{folder}/fp32_{graph}.tflite", "rb").read(),
            "cpu",
        )
    else:  # aeq:GRAPH:RECIPE[:RANGES]
        import aeq_backend

        fp32 = open(f"{folder}/fp32_{graph}.tflite", "rb").read()
        recipe, _, int16 = rest[0].partition("+")
        ranges = ":".join(rest[1:]) or None
        content = aeq_backend.quantize(
            fp32, [x[None] for x in data["calib"]], recipe=recipe,
            ranges=ranges, int16_ops=[op for op in int16.split(",") if op],
        )  # fmt: skip
        plan = "npu" if recipe.startswith("static_wi8_ai8") else "x"
    path = f"{folder}/{variant.replace(':', '_')}.tflite"
    with open(path, "wb") as f:
        f.write(content)
    result = evaluate(path, data, plan if plan in ("npu",) else "cpu")
    result["variant"] = variant
    result["seconds"] = round(time.time() - started, 1)
    print("RESULT", json.dumps(result))


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
