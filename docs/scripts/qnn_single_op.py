"""Which ops QNN's simulated HTP computes differently from LiteRT's int8
CPU kernels (docs/npu.md, "Which ops the HTP computes differently").

    python docs/scripts/qnn_single_op.py NPU.tflite calibration/ \\
        L2_NORMALIZATION,FULLY_CONNECTED,BATCH_MATMUL,SOFTMAX 2

Each op of the listed kinds (the first N of each) is compiled alone for
SM8650 and run on the inputs LiteRT computed for it on 2 photos; prints a
Markdown row per op: elements off / max / mean difference in LSB against
LiteRT's optimized int8 kernels, for XNNPACK, the reference kernels and
the simulated HTP.
"""

import sys
import tempfile

import numpy as np

from edge_backbones.npu.op_probe import probe_ops
from edge_backbones.npu.socs import parse_socs
from edge_backbones.npu.verify import holdout_paths
from edge_backbones.runtime.edge_model import EdgeModel


def main(source, photos, kinds, per_kind):
    runtime = EdgeModel(source)
    quant = runtime.input_spec.quantization
    inputs = []
    for photo in holdout_paths(photos, 2):
        x = runtime.preprocess(photo)
        xq = np.rint(x / quant["scale"] + quant["zero_point"])
        inputs.append(np.clip(xq, -128, 127).astype(np.int8)[None])
    soc = parse_socs("SM8650")[0]
    with tempfile.TemporaryDirectory(prefix="qnn_single_op_") as work:
        rows = probe_ops(
            source, inputs, soc, kinds.split(","), int(per_kind), work
        )
    print(
        "| op | kind | output std (LSB) | XNNPACK | reference kernels | "
        "QNN HTP (simulated) |\n|---|---|---|---|---|---|"
    )
    for row in rows:
        print(row.row())


if __name__ == "__main__":
    main(*sys.argv[1:5])
