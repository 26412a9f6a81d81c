"""A .tflite's operators as LiteRT's own flatbuffer reader sees them.

Graph checks compare the package's reader (`runtime.model_file`) and the
metadata it writes with this independent count, so a bug in our reader
cannot hide behind itself.
"""

import collections
import dataclasses

__all__ = ["Operator", "operators", "op_histogram"]


@dataclasses.dataclass(frozen=True)
class Operator:
    name: str  # builtin op name, e.g. "FULLY_CONNECTED"
    output: str  # its first output tensor's name (the Keras layer path)
    output_type: str  # "FLOAT32", "INT8", ...
    input_types: tuple  # per input ("" for an omitted optional input)


def _names(enum):
    return {v: k for k, v in vars(enum).items() if not k.startswith("_")}


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


def operators(source):
    """Every subgraph's operators, in order, from a path or bytes."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    if isinstance(source, (bytes, bytearray)):
        model = flatbuffer_utils.read_model_from_bytearray(bytearray(source))
    else:
        model = flatbuffer_utils.read_model(str(source))
    op_names = _names(schema.BuiltinOperator)
    type_names = _names(schema.TensorType)
    found = []
    for subgraph in model.subgraphs:
        tensors = subgraph.tensors
        for op in subgraph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
            out = tensors[op.outputs[0]]
            found.append(
                Operator(
                    name=op_names[builtin],
                    output=_text(out.name),
                    output_type=type_names[out.type],
                    input_types=tuple(
                        type_names[tensors[i].type] if i >= 0 else ""
                        for i in op.inputs
                    ),
                )
            )
    return found


def op_histogram(source):
    """Op name -> count, over every subgraph."""
    return dict(collections.Counter(op.name for op in operators(source)))
