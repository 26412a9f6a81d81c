"""Per op: LiteRT int8 (XNNPACK and reference kernels) and OpenVINO's CPU
device against the float graph of the same weights (docs/npu.md).

    python docs/scripts/openvino_int8_per_op.py NPU.tflite FP32.tflite \\
        calibration/astronaut.jpg calibration/architecture.jpg

OpenVINO reads the int8 .tflite with its TFLite front end (bit-identical
here to LiteRT's OpenVINO dispatch of the `intel-cpu` compiled file); every
op output whose tensor name the fp32 graph shares is compared, as the mean
cosine over the photos.
"""

import collections
import sys

import numpy as np
import openvino as ov
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from edge_backbones.runtime.edge_model import EdgeModel

ENGINES = ("xnnpack", "reference", "openvino")


def _subgraph(path):
    with open(path, "rb") as f:
        model = schema.ModelT.InitFromPackedBuf(bytearray(f.read()), 0)
    return model, model.subgraphs[0]


def _interpreter(path, reference_kernels):
    kwargs = {"model_path": path, "experimental_preserve_all_tensors": True}
    if reference_kernels:
        kwargs["experimental_op_resolver_type"] = (
            OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        )
    interpreter = Interpreter(**kwargs)
    interpreter.allocate_tensors()
    return interpreter


def _cosine(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def main(int8_path, fp32_path, photos):
    model, graph = _subgraph(int8_path)
    _, float_graph = _subgraph(fp32_path)
    op_names = {
        v: k
        for k, v in vars(schema.BuiltinOperator).items()
        if not k.startswith("_")
    }
    float_index = {
        t.name.decode(): i for i, t in enumerate(float_graph.tensors)
    }
    xnnpack = _interpreter(int8_path, False)
    reference = _interpreter(int8_path, True)
    floats = _interpreter(fp32_path, False)
    core = ov.Core()
    ov_model = core.read_model(int8_path)
    shared = []
    for index, op in enumerate(graph.operators):
        name = graph.tensors[op.outputs[0]].name.decode()
        if name in float_index:
            try:
                ov_model.add_outputs([name])
            except RuntimeError:  # a tensor OpenVINO fused away
                continue
            kind = op_names[model.operatorCodes[op.opcodeIndex].builtinCode]
            shared.append((index, kind, op.outputs[0], name))
    compiled = core.compile_model(ov_model, "CPU")
    runtime = EdgeModel(int8_path)
    cosines = collections.defaultdict(lambda: collections.defaultdict(list))
    for photo in photos:
        x = runtime.preprocess(photo)
        quant = runtime.input_spec.quantization
        xq = np.rint(x / quant["scale"] + quant["zero_point"])
        xq = np.clip(xq, -128, 127).astype(np.int8)[None]
        for interpreter in (xnnpack, reference):
            interpreter.set_tensor(
                interpreter.get_input_details()[0]["index"], xq
            )
            interpreter.invoke()
        floats.set_tensor(floats.get_input_details()[0]["index"], x[None])
        floats.invoke()
        result = compiled(xq)
        by_name = {
            n: result[o] for o in compiled.outputs for n in o.get_names()
        }
        for index, kind, tensor, name in shared:
            q = graph.tensors[tensor].quantization
            scale, zero = q.scale[0], q.zeroPoint[0]

            def dequantize(raw, scale=scale, zero=zero):
                raw = np.asarray(raw)
                if np.issubdtype(raw.dtype, np.integer):
                    return (raw.astype(np.float64) - zero) * scale
                return raw.astype(np.float64)

            want = floats.get_tensor(float_index[name]).ravel()
            got = {
                "xnnpack": dequantize(xnnpack.get_tensor(tensor)).ravel(),
                "reference": dequantize(reference.get_tensor(tensor)).ravel(),
                "openvino": dequantize(by_name[name]).ravel(),
            }
            if all(v.size == want.size for v in got.values()):
                for engine, values in got.items():
                    cosines[(index, kind, name)][engine].append(
                        _cosine(values, want.astype(np.float64))
                    )
    print("op  kind               " + "  ".join(ENGINES) + "  tensor")
    for (index, kind, name), per_engine in sorted(cosines.items()):
        figures = "  ".join(f"{np.mean(per_engine[e]):.5f}" for e in ENGINES)
        print(f"{index:3d} {kind:<18} {figures}  {name[-50:]}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
