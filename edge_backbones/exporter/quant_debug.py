"""Which layers lose the most under int8, and keeping chosen ones in float.

`layer_report` runs `tf.lite.experimental.QuantizationDebugger`: each int8
op's output is compared with the float op fed the same (dequantized) input.
Rows are ranked by `rmse/scale`, the error in units of the tensor's own
quantization step: ~0.29 (1/sqrt(12)) is ideal rounding; larger means
clipping or a range too wide for 8 bits (softmax, attention scores).

`match_nodes` turns names from that report (or any part of a tensor name,
e.g. a Keras layer name) into the output tensor names the quantizer keeps
in float (`--float-layers`); `scheme_float_nodes` does the same for a
scheme's `float_layer_types` and `float_layer_names` (modes.toml).

`write_node_data` writes the same `rmse/scale` as a Model Explorer
(`ai-edge-model-explorer`) node-data overlay, so the error is painted on
the graph: keys are op output tensor names, which Model Explorer matches
against each TFLite node's `tensor_name`.
"""

import csv
import fnmatch
import io
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from edge_backbones._compat import keras as keras_compat
from edge_backbones._compat import litert as litert_compat
from edge_backbones._compat import tensorflow as tf_compat
from edge_backbones.atomic_io import dumps_json, write_file_atomic
from edge_backbones.core.suggest import suggest
from edge_backbones.errors import ExportError, require

__all__ = [
    "layer_report",
    "op_outputs",
    "format_layer_report",
    "match_nodes",
    "layer_type_nodes",
    "layer_name_nodes",
    "weighted_layer_nodes",
    "scheme_float_nodes",
    "write_layer_report",
    "node_data",
    "write_node_data",
    "write_node_values",
]

# Model Explorer paints each node by where its value falls between the
# smallest (stop 0) and the largest (stop 1) value in the overlay
_GRADIENT = [
    {"stop": 0, "bgColor": "#2e7d32"},
    {"stop": 0.5, "bgColor": "#fdd835"},
    {"stop": 1, "bgColor": "#c62828"},
]


def op_outputs(model_content: Any) -> Any:
    """[(op name, output tensor name)] of a .tflite model, in order."""
    from edge_backbones.runtime.backends import load_backend

    interpreter = load_backend().Interpreter(model_content=model_content)
    names = {t["index"]: t["name"] for t in interpreter.get_tensor_details()}
    pairs = []
    for op in litert_compat.ops_details(interpreter):
        for index in op["outputs"]:
            pairs.append((op["op_name"], names.get(int(index), "")))
    return pairs


def output_nodes(model_content: bytes, outputs: Iterable[str]) -> list[str]:
    """The graph's tensor names of the serving signature's `outputs`
    (signature names, e.g. "iou_predictions"): keeping these nodes float
    keeps the ops that produce the outputs float, whose tensors are named
    after the signature and not after their layers."""
    from edge_backbones.runtime.backends import load_backend

    interpreter = load_backend().Interpreter(model_content=model_content)
    runner = interpreter.get_signature_runner("serving_default")
    names = {t["index"]: t["name"] for t in interpreter.get_tensor_details()}
    details = runner.get_output_details()
    return [names[details[output]["index"]] for output in outputs]


def match_nodes(model_content: bytes, patterns: Iterable[str]) -> list[str]:
    """Output tensor names matching each pattern (exact, else substring).

    Raises ExportError naming a pattern that matches nothing, with the
    closest names, so a typo never silently quantizes a layer.
    """
    pairs = op_outputs(model_content)
    tensors = [name for _, name in pairs]
    matched = []
    for pattern in patterns:
        exact = [t for t in tensors if t == pattern]
        hits = exact or [t for t in tensors if pattern in t]
        if not hits:
            close = suggest(pattern, tensors)
            raise ExportError(
                f"--float-layers {pattern!r} matches no op output in the "
                f"model (closest: {close}). Use names from --layer-report "
                "or a Keras layer name (e.g. 'block1/attn')."
            )
        matched += [t for t in hits if t not in matched]
    return matched


def layer_type_nodes(
    model_content: bytes, backbone: Any, class_names: Iterable[str]
) -> list[str]:
    """Output tensor names of every op inside layers of `class_names`.

    The converter names each tensor after the Keras layer path that made it
    (`serving_1/stage1_block0_norm1_1/Mean`), so the ops of a layer are the
    tensors with that layer's name as a path component.
    """
    names = sorted(
        {
            layer.name
            for layer in keras_compat.flatten_layers(
                backbone, include_self=False
            )
            if type(layer).__name__ in class_names
        }
    )
    if not names:
        return []
    pattern = re.compile(
        r"(^|/)(" + "|".join(map(re.escape, names)) + r")(_\d+)?/"
    )
    return [
        tensor
        for _, tensor in op_outputs(model_content)
        if pattern.search(tensor)
    ]


def _layer_paths(model):
    """['parent/child', ...]: the path of every layer nested in `model`."""
    paths = []

    def walk(layer, prefix):
        for child in keras_compat.flatten_layers(
            layer, include_self=False, recursive=False
        ):
            path = prefix + child.name
            paths.append(path)
            walk(child, path + "/")

    walk(model, "")
    return paths


def layer_name_nodes(
    model_content: bytes, backbone: Any, patterns: Iterable[str]
) -> list[str]:
    """Output tensor names of every op inside layers whose path matches
    one of the glob `patterns` (`stage1_patch_embed_proj`,
    `stage*_attention/proj`: a nested layer's path is its parents' names
    and its own, joined by "/").

    The converter names each tensor after that path, each name with an
    optional `_N` suffix (`serving_1/stage1_block0_attention_1/proj_1/
    Tensordot`).
    """
    paths = [
        path
        for path in _layer_paths(backbone)
        if any(fnmatch.fnmatchcase(path, p) for p in patterns)
    ]
    if not paths:
        return []
    pattern = _path_pattern(paths)
    return [
        tensor
        for _, tensor in op_outputs(model_content)
        if pattern.search(tensor)
    ]


def _path_pattern(paths: Iterable[str]) -> "re.Pattern[str]":
    return re.compile(
        r"(^|/)("
        + "|".join(
            r"(_\d+)?/".join(map(re.escape, path.split("/"))) for path in paths
        )
        + r")(_\d+)?/"
    )


def weighted_layer_nodes(
    model_content: bytes, backbone: Any
) -> dict[str, list[str]]:
    """{layer path: output tensor names of its ops} for every innermost
    layer with weights (Dense, Conv2D, ...) that has ops in the graph:
    the units a per-layer precision choice picks among (`budget`)."""
    leaves = []

    def walk(layer: Any, prefix: str) -> None:
        for child in keras_compat.flatten_layers(
            layer, include_self=False, recursive=False
        ):
            path = prefix + child.name
            children = list(
                keras_compat.flatten_layers(
                    child, include_self=False, recursive=False
                )
            )
            if children:
                walk(child, path + "/")
            elif child.weights:
                leaves.append(path)

    walk(backbone, "")
    tensors = [tensor for _, tensor in op_outputs(model_content)]
    found = {}
    for path in leaves:
        pattern = _path_pattern([path])
        nodes = [t for t in tensors if pattern.search(t)]
        if nodes:
            found[path] = nodes
    return found


def scheme_float_nodes(
    model_content: bytes, backbone: Any, plan: Any
) -> tuple[list[str], list[str]]:
    """(type nodes, name nodes): the output tensor names of the ops a
    scheme (`modes.Plan`) keeps in float by its float layer types and by
    its float layer names; empty where it lists none."""
    types, names = plan.float_layer_types, plan.float_layer_names
    return (
        layer_type_nodes(model_content, backbone, types) if types else [],
        layer_name_nodes(model_content, backbone, names) if names else [],
    )


def layer_report(converter: Any, debug_dataset: Any) -> list[dict[str, Any]]:
    """Per-layer int8 error rows, worst first.

    `converter` is an `export.convert.Converter` with a representative
    dataset; `debug_dataset` yields model inputs like it (use held-out
    images). Each row: op_name, tensor_name, scale, rmse/scale,
    mean_error, max_abs_error, mean_squared_error.
    """
    tf = require("tensorflow", "export")
    tflite_converter = tf_compat.tflite_converter(converter)
    tflite_converter.optimizations = [tf.lite.Optimize.DEFAULT]
    tflite_converter.representative_dataset = converter.representative_dataset
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=tflite_converter, debug_dataset=debug_dataset
    )
    debugger.run()
    dump = io.StringIO()
    debugger.layer_statistics_dump(dump)
    rows = []
    for row in csv.DictReader(io.StringIO(dump.getvalue())):
        scale = float(row["scale"]) if row.get("scale") else 0.0
        mse = float(row["mean_squared_error"])
        rows.append(
            {
                "op_name": row["op_name"],
                "tensor_name": row["tensor_name"],
                "scale": scale,
                "rmse/scale": float(np.sqrt(mse) / scale) if scale else 0.0,
                "mean_error": float(row["mean_error"]),
                "max_abs_error": float(row["max_abs_error"]),
                "mean_squared_error": mse,
            }
        )
    rows.sort(key=lambda r: r["rmse/scale"], reverse=True)
    return rows


def format_layer_report(
    rows: Sequence[Mapping[str, Any]], top: int = 10
) -> str:
    """The `top` worst rows as an aligned text table."""
    lines = [f"{'rmse/scale':>10}  {'max abs':>9}  {'op':<16} tensor"]
    for row in rows[:top]:
        lines.append(
            f"{row['rmse/scale']:>10.3f}  {row['max_abs_error']:>9.4f}  "
            f"{row['op_name']:<16} {row['tensor_name']}"
        )
    return "\n".join(lines)


def write_layer_report(rows: Sequence[Mapping[str, Any]], path: str) -> str:
    """Writes every row as CSV (atomically)."""
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=list(rows[0]) if rows else [])
    writer.writeheader()
    writer.writerows(rows)
    return write_file_atomic(path, text.getvalue())


def node_data(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Model Explorer graph node data (its `GraphNodeData` JSON) of rows.

    One result per op output tensor: {tensor name: {"value": rmse/scale}};
    a tensor reported twice keeps its worst value.
    """
    results: dict[str, dict[str, float]] = {}
    for row in rows:
        name, value = row["tensor_name"], row["rmse/scale"]
        if name and math.isfinite(value):  # strict JSON has no NaN
            best = results.get(name, {"value": value})["value"]
            results[name] = {"value": max(best, value)}
    return {
        "name": "int8 rmse/scale",
        "results": results,
        "gradient": _GRADIENT,
    }


def write_node_data(rows: Sequence[Mapping[str, Any]], path: str) -> str:
    """Writes `node_data(rows)` as strict JSON (atomically)."""
    return write_file_atomic(path, dumps_json(node_data(rows), indent=1))


def write_node_values(name: str, values: Mapping[str, float], path: str) -> str:
    """Writes {op output tensor: value} as one Model Explorer node-data
    overlay (`GraphNodeData`) called `name`: strict JSON, atomically,
    non-finite values left out."""
    document = {
        "name": name,
        "results": {
            tensor: {"value": value}
            for tensor, value in values.items()
            if tensor and math.isfinite(value)
        },
        "gradient": _GRADIENT,
    }
    return write_file_atomic(path, dumps_json(document, indent=1))
