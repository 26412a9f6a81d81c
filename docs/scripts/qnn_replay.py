"""How much of the simulated HTP's distance to LiteRT each op kind causes
(docs/npu.md, "Which ops the HTP computes differently").

    python docs/scripts/qnn_replay.py NPU.tflite calibration/ \\
        "" "L2_NORMALIZATION" "L2_NORMALIZATION,FULLY_CONNECTED"

Replays the graph op by op (`edge_backbones.npu.op_probe.replay`): every
op compiled alone for SM8650 and run in QNN's simulated HTP, except the
kinds of each argument, which run on LiteRT's CPU kernels. Prints, per
argument, the cosine per level against the whole graph on LiteRT's
XNNPACK over the first 4 photos.
"""

import sys
import tempfile

import numpy as np

from edge_backbones.npu.op_probe import replay
from edge_backbones.npu.socs import parse_socs
from edge_backbones.npu.verify import holdout_paths
from edge_backbones.runtime.edge_model import EdgeModel


def _levels(source, outputs, want):
    """Replayed int8 outputs dequantized and keyed like EdgeModel's."""
    from ai_edge_litert.tools import flatbuffer_utils

    graph = flatbuffer_utils.read_model(source).subgraphs[0]
    levels = {}
    for level, reference in want.items():
        # each level has its own size
        (index,) = [
            i
            for i in outputs
            if np.prod(graph.tensors[i].shape) == reference.size
        ]
        quant = graph.tensors[index].quantization
        levels[level] = (
            outputs[index].astype(np.float64) - quant.zeroPoint[0]
        ) * quant.scale[0]
    return levels


def main(source, photos, *cpu_kind_lists):
    cpu = EdgeModel(source, delegates=("xnnpack",))
    quant = cpu.input_spec.quantization
    inputs = [cpu.preprocess(p) for p in holdout_paths(photos, 4)]
    with tempfile.TemporaryDirectory(prefix="qnn_replay_") as work:
        run = replay(source, parse_socs("SM8650")[0], work)
        for kinds in cpu_kind_lists:
            got, want = [], []
            for x in inputs:
                xq = np.rint(x / quant["scale"] + quant["zero_point"])
                xq = np.clip(xq, -128, 127).astype(np.int8)[None]
                reference = cpu(x)
                replayed = run(xq, tuple(k for k in kinds.split(",") if k))
                got.append(_levels(source, replayed, reference))
                want.append(reference)
            cosines = []
            for level in want[0]:
                a = np.concatenate([w[level].ravel() for w in want])
                b = np.concatenate([g[level].ravel() for g in got])
                cos = a @ b / np.linalg.norm(a) / np.linalg.norm(b)
                cosines.append(f"{level} {cos:.5f}")
            print(f"on the CPU: {kinds or 'nothing'}: " + ", ".join(cosines))


if __name__ == "__main__":
    main(*sys.argv[1:])
