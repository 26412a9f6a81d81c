"""int8_mixed with more int8 ops kept float, group by group: which ops
carry the error. Calibrates once per range method, then quantizes and
verifies one artifact per group on a prepared case (setup_case.py).

python benchmarks/quant/float_groups.py FOLDER RANGES GROUP...

A GROUP is "+"-joined regular expressions over op output tensor names;
the FULLY_CONNECTED / CONV_2D / DEPTHWISE_CONV_2D ops they match stay
float on top of the scheme's float op kinds and layer types (not its
float_layer_names: the groups start from the plain recipe). "base" keeps
nothing more. Prints one RESULT line (JSON) per group.
"""

import json
import re
import sys
import time

from evaluate import evaluate, load
from setup_case import load_case_backbone

from edge_backbones.core import modes
from edge_backbones.exporter.convert import Converter
from edge_backbones.exporter.quant_debug import layer_type_nodes, op_outputs

WEIGHTED = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D")


def group_nodes(pairs, group):
    patterns = [p for p in group.split("+") if p and p != "base"]
    return [
        tensor
        for op, tensor in pairs
        if op in WEIGHTED and any(re.search(p, tensor) for p in patterns)
    ]


def main(folder, ranges, groups):
    data = load(folder)

    def dataset():
        for x in data["calib"]:
            yield {"images": x[None]}

    converter = Converter(f"{folder}/sm_plain", dataset)
    fp32 = converter.fp32()
    pairs = op_outputs(fp32)
    mixed = modes.MODE_PLANS["int8_mixed"]
    case, size = json.load(open(f"{folder}/case.json"))
    backbone = load_case_backbone(case, size)
    norms = layer_type_nodes(fp32, backbone, mixed.float_layer_types)
    for group in groups:
        extra = group_nodes(pairs, group)
        started = time.time()
        content = converter.int8(
            float_ops=mixed.float_ops,
            float_nodes=norms + extra,
            ranges=ranges,
        )
        name = re.sub(r"[^A-Za-z0-9]+", "_", f"{group}_{ranges}")
        path = f"{folder}/groups_{name}.tflite"
        with open(path, "wb") as f:
            f.write(content)
        result = evaluate(path, data, "cpu")
        result.update(
            group=group,
            float_ops_added=len(extra),
            ranges=ranges,
            seconds=round(time.time() - started, 1),
        )
        print("RESULT", json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
