"""Per op: QNN's simulated HTP against LiteRT's CPU on an `npu` artifact
(docs/npu.md, "Where the small ViTDet's simulated numerics drift").

    python docs/scripts/qnn_per_op.py NPU.tflite calibration/

Every int8 op output becomes a graph output, the probe is compiled for
SM8650 and run in the simulator; each tensor is compared with LiteRT's
(mean cosine over the first 3 photos, around the zero point). Exposing the
tensors can change how QNN fuses ops, so this locates drift, it does not
reproduce the shipped binary bit for bit.
"""

import collections
import os
import sys
import tempfile

import numpy as np
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter
from ai_edge_litert.tools import flatbuffer_utils

from edge_backbones.npu.compile import compile_model
from edge_backbones.npu.socs import parse_socs
from edge_backbones.npu.verify import image_paths
from edge_backbones.runtime.edge_model import EdgeModel
from edge_backbones.runtime.npu_engines import QnnHtpSimulatorEngine

_INT8 = 9


def _probe(source, work):
    """The model with every int8 op output also a signature output."""
    model = flatbuffer_utils.read_model(source)
    graph = model.subgraphs[0]
    kinds = {
        v: k
        for k, v in vars(schema.BuiltinOperator).items()
        if not k.startswith("_")
    }
    exposed = []
    for index, op in enumerate(graph.operators):
        tensor = op.outputs[0]
        if graph.tensors[tensor].type == _INT8 and tensor not in graph.outputs:
            kind = kinds[model.operatorCodes[op.opcodeIndex].builtinCode]
            exposed.append((index, kind, tensor))
    graph.outputs = [*graph.outputs, *(t for _, _, t in exposed)]
    for _, _, tensor in exposed:
        entry = schema.TensorMapT()
        entry.name, entry.tensorIndex = f"t{tensor}", tensor
        model.signatureDefs[0].outputs.append(entry)
    path = os.path.join(work, "probe.tflite")
    flatbuffer_utils.write_model(model, path)
    return path, graph, exposed


def main(source, photos):
    work = tempfile.mkdtemp(prefix="qnn_per_op_")
    probe, graph, exposed = _probe(source, work)
    compiled, _, _ = compile_model(probe, parse_socs("SM8650")[0])
    compiled_path = os.path.join(work, "probe_SM8650.tflite")
    with open(compiled_path, "wb") as f:
        f.write(compiled)
    simulator = QnnHtpSimulatorEngine(compiled_path)
    outputs = [(f"t{tensor}", None, None) for *_, tensor in exposed]
    simulator.bind("serving_default", "images", outputs)
    runner = Interpreter(model_path=probe)
    runner.allocate_tensors()
    cpu = runner.get_signature_runner("serving_default")
    runtime = EdgeModel(source)
    quant = runtime.input_spec.quantization
    cosines = collections.defaultdict(list)
    for photo in image_paths(photos, 3):
        x = runtime.preprocess(photo)
        xq = np.rint(x / quant["scale"] + quant["zero_point"])
        xq = np.clip(xq, -128, 127).astype(np.int8)[None]
        want = cpu(images=xq)
        for (index, kind, tensor), got in zip(
            exposed, simulator.run(xq), strict=True
        ):
            zero = graph.tensors[tensor].quantization.zeroPoint[0]
            a = want[f"t{tensor}"].astype(np.float64).ravel() - zero
            b = np.asarray(got, np.float64).ravel() - zero
            norm = np.linalg.norm(a) * np.linalg.norm(b)
            # an all-zero tensor in both (e.g. zero-initialised weights)
            cosines[(index, kind, tensor)].append(
                1.0 if norm == 0 and not a.any() and not b.any() else
                float(a @ b / (norm + 1e-12))
            )  # fmt: skip
    for (index, kind, tensor), values in sorted(cosines.items()):
        name = graph.tensors[tensor].name.decode()[-50:]
        print(f"{index:3d} {kind:<16} {np.mean(values):.5f}  {name}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
