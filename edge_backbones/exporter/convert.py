"""SavedModel -> .tflite bytes in each mode, calibrating at most once.

Modes:
- `fp32`, `fp16` (float16 weights, float compute), `dynamic` (int8 weights,
  float activations quantized on the fly by the kernels);
- `int8` (full int8, float I/O), `int8_io` (full int8, int8 or uint8 I/O),
  `int16x8` (int16 activations, int8 weights).

Every int8 variant is quantized from ONE calibrated model (the converter's
calibration pass, then the MLIR quantizer with per-variant options: I/O
type, ops and nodes kept in float). `tf.lite.experimental.
QuantizationDebugger` does the same two steps; calling them directly skips
its debug model and lets the `cpu`, `npu` and `int8` artifacts share one
calibration, which is most of the conversion time.
"""

import collections
import contextlib
import io
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterable
from typing import Any

from edge_backbones._compat import tensorflow as tf_compat
from edge_backbones.errors import ExportError, require
from edge_backbones.exporter.fc_bias import add_zero_fc_biases
from edge_backbones.exporter.grouped_depthwise import depthwise_as_grouped_conv
from edge_backbones.exporter.inplace_ranges import remeasure_tied_ranges
from edge_backbones.runtime.model_file import operator_builtin

__all__ = [
    "INT8_IO_DTYPES",
    "Converter",
    "dequantize_weights",
    "gpu_compatibility",
]

INT8_IO_DTYPES = ("int8", "uint8")


def _flex_ops(message):
    match = re.search(r"TF Select ops: ([^\n]+)", message)
    return match.group(1).strip() if match else None


class Converter:
    """Converts one SavedModel (input `images`) in several modes.

    Args:
        saved_model_dir: a SavedModel written by `graph.write_saved_model`.
        representative_dataset: a callable returning an iterable of
            `{"images": float32 (1, H, W, 3)}`; needed by the calibrated
            modes only.
        allow_flex: let ops without a TFLite builtin run as select-TF (Flex)
            ops. Off by default: a Flex op needs the TensorFlow runtime,
            which a phone or a Raspberry Pi does not have.
        log: a callable taking a progress line (default: stderr).
    """

    def __init__(
        self,
        saved_model_dir: str | os.PathLike[str],
        representative_dataset: Callable[[], Iterable[Any]] | None = None,
        allow_flex: bool = False,
        log: Callable[[str], object] | None = None,
    ) -> None:
        self.saved_model_dir = os.fspath(saved_model_dir)
        # None until calibration photos are given (fp32/fp16/dynamic only)
        self.representative_dataset: Any = representative_dataset
        self.allow_flex = allow_flex
        self._log = log or (lambda line: print(line, file=sys.stderr))
        self._calibrated: dict[str, bytes] = {}  # range method -> model
        self._fp32: bytes | None = None

    def _converter(self):
        tf = require("tensorflow", "export")
        converter = tf.lite.TFLiteConverter.from_saved_model(
            self.saved_model_dir
        )
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if self.allow_flex:
            converter.target_spec.supported_ops.append(
                tf.lite.OpsSet.SELECT_TF_OPS
            )
        return converter

    def _run(self, converter, what):
        ConverterError = tf_compat.converter_error()

        try:
            with warnings.catch_warnings():
                # calibration runs TF's own (deprecated) interpreter; the
                # warning is about TF internals, not about this export
                warnings.filterwarnings(
                    "ignore", message=".*tf.lite.Interpreter is deprecated"
                )
                return converter.convert()
        except RuntimeError as exc:
            if "not yet supported for op" in str(exc):
                # e.g. int16x8 has no SIN kernel
                raise ExportError(
                    f"{what}: the quantizer cannot quantize an op of this "
                    f"graph ({str(exc).strip().splitlines()[0]}). Export "
                    "the modes that support it (float, int8), or change "
                    "the layer that emits the op."
                ) from exc
            if "Select TensorFlow op" not in str(exc):
                raise
            # calibration runs the graph in TF's TFLite interpreter, which
            # has no Flex delegate: allow_flex cannot help here
            raise ExportError(
                f"{what}: calibration runs the graph in the TFLite "
                "interpreter, which cannot run its select-TF (Flex) ops, so "
                "calibrated modes (int8, int8_io, int8_mixed, int16x8, npu) "
                "cannot be exported even with allow_flex. Fix the layer that"
                " emits them, or export float / dynamic modes only."
            ) from exc
        except ConverterError as exc:
            message = str(exc)
            flex = _flex_ops(message)
            if flex:
                raise ExportError(
                    f"{what}: the graph needs TensorFlow ops with no TFLite "
                    f"builtin ({flex}), which edge runtimes cannot run. Fix "
                    "the layer that emits them (the family's layers must "
                    "lower to builtins), or pass allow_flex=True / "
                    "--allow-flex to ship a model that needs the Flex "
                    "delegate."
                ) from exc
            raise ExportError(
                f"{what} failed: {message.strip()[-2000:]}"
            ) from exc

    def _require_dataset(self, mode):
        if self.representative_dataset is None:
            raise ExportError(
                f"Mode {mode!r} quantizes activations and needs calibration "
                "images; got none. Pass calibration='calibration/' (or "
                "--calibration DIR) with a few photos like the deployment's."
            )

    # ---- float modes -----------------------------------------------------

    def fp32(self) -> bytes:
        """The float32 model (converted once)."""
        # kept: the float graph also names the nodes for float fallback
        if self._fp32 is None:
            self._fp32 = self._run(self._converter(), "fp32 conversion")
        return self._fp32

    def fp16(self) -> bytes:
        """float16 weights, float32 activations."""
        tf = require("tensorflow", "export")
        converter = self._converter()
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
        return self._run(converter, "fp16 conversion")

    def dynamic(self, float_weight_ops: Iterable[str] = ()) -> bytes:
        """int8 weights; activations quantized per inference by the kernel.

        `float_weight_ops` (op names) keep their weights in float32: see
        the `cpu` target, whose DEPTHWISE_CONV_2D has no fast hybrid kernel.
        """
        tf = require("tensorflow", "export")
        converter = self._converter()
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        model = self._run(converter, "dynamic-range conversion")
        if float_weight_ops:
            model = dequantize_weights(model, float_weight_ops)
        return model

    # ---- calibrated modes ------------------------------------------------

    def samples(self) -> list[Any]:
        """The calibration inputs, each (1, H, W, 3) float32."""
        self._require_dataset("int8")
        return [s["images"] for s in self.representative_dataset()]

    def calibrated_model(self, ranges: str = "minmax") -> bytes:
        """The float model with calibration statistics (computed once).

        `ranges`: "minmax" (TF's calibrator), or "percentile:P" / "mse"
        (`calibration_ranges`), which replace its min/max per activation.
        """
        if ranges in self._calibrated:
            return self._calibrated[ranges]
        if ranges != "minmax":
            from edge_backbones.exporter.calibration_ranges import (
                override_calibrated,
            )

            self._log(f"calibrating: activation ranges by {ranges}")
            self._calibrated[ranges] = override_calibrated(
                self.calibrated_model(), self.samples(), ranges
            )
            return self._calibrated[ranges]
        tf = require("tensorflow", "export")
        self._require_dataset("int8")
        self._log("calibrating: running the representative dataset")
        converter = self._converter()
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = self.representative_dataset
        converter.experimental_new_quantizer = True
        # stop after calibration; quantize per variant in int8()
        tf_compat.calibrate_only(converter)
        calibrated = self._run(converter, "calibration")
        self._calibrated[ranges] = remeasure_tied_ranges(
            calibrated, self.representative_dataset, self._log
        )
        return self._calibrated[ranges]

    def int8(
        self,
        io_dtype: str = "float32",
        float_ops: Iterable[str] = (),
        float_nodes: Iterable[str] = (),
        ranges: str = "minmax",
    ) -> bytes:
        """Full-int8 from the calibrated model.

        `io_dtype` "float32" keeps float I/O (QUANTIZE/DEQUANTIZE at the
        edges); "int8"/"uint8" make the I/O tensors integer. `float_ops`
        (TFLite op names, e.g. "BATCH_MATMUL") and `float_nodes` (output
        tensor names, see `quant_debug.layer_report`) stay in float.
        `ranges`: how activation ranges are chosen (see `calibrated`).
        """
        tf = require("tensorflow", "export")
        if io_dtype not in ("float32", *INT8_IO_DTYPES):
            raise ExportError(
                f"int8 I/O type {io_dtype!r} is not supported; use float32, "
                "int8 or uint8."
            )
        calibrated = self.calibrated_model(ranges)
        self._log(
            "quantizing: int8 (" + _describe(float_ops, float_nodes) + ")"
        )
        try:
            model = tf_compat.mlir_quantize(
                calibrated,
                denylisted_ops=list(float_ops) or None,
                denylisted_nodes=list(float_nodes) or None,
            )
        except Exception as exc:
            raise ExportError(f"int8 quantization failed: {exc}") from exc
        # tflite-runtime 2.14 on aarch64 crashes on bias-less int8 FCs
        model = add_zero_fc_biases(model)
        if io_dtype != "float32":
            dtype = getattr(tf, io_dtype)
            try:
                model = tf_compat.modify_model_io_type(model, dtype)
            except ValueError as exc:
                raise ExportError(
                    f"Cannot make the I/O {io_dtype} ({exc}); a model with "
                    "float ops next to its input or outputs keeps float "
                    "I/O: drop those ops from float_ops/float_nodes."
                ) from exc
        return model

    def int16x8(
        self, integer_io: bool = False, grouped_depthwise: bool = False
    ) -> bytes:
        """int16 activations, int8 weights.

        `integer_io`: int16 input and outputs instead of float ones (no
        QUANTIZE/DEQUANTIZE left in the graph). `grouped_depthwise`:
        depthwise convolutions as grouped CONV_2D, which NPUs without an
        int16 depthwise kernel run (`grouped_depthwise.py`).
        """
        tf = require("tensorflow", "export")
        self._require_dataset("int16x8")
        self._log("calibrating + quantizing: int16x8")
        converter = self._converter()
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = self.representative_dataset
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        ]
        if integer_io:
            converter.inference_input_type = tf.int16
            converter.inference_output_type = tf.int16
        if self.allow_flex:  # as in every other mode
            converter.target_spec.supported_ops.append(
                tf.lite.OpsSet.SELECT_TF_OPS
            )
        model = self._run(converter, "int16x8 conversion")
        if grouped_depthwise:
            model = depthwise_as_grouped_conv(model)
        return model


def dequantize_weights(model_content: bytes, op_names: Iterable[str]) -> bytes:
    """`model_content` with the int8 weights of `op_names` ops in float32.

    Only constant weight tensors (input 1) of those ops change; the ops then
    run their float kernels.
    """
    require("tensorflow", "export")
    import numpy as np

    schema = tf_compat.schema()
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(model_content)
    wanted = {getattr(schema.BuiltinOperator, name) for name in op_names}
    # the converter deduplicates equal buffers: two weights that quantize
    # to the same int8 bytes (with different scales) share one
    users = collections.Counter(
        t.buffer for subgraph in model.subgraphs for t in subgraph.tensors
    )
    changed = 0
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            builtin = operator_builtin(model.operatorCodes[op.opcodeIndex])
            if builtin not in wanted or len(op.inputs) < 2:
                continue
            tensor = subgraph.tensors[op.inputs[1]]
            buffer = model.buffers[tensor.buffer]
            quant = tensor.quantization
            if (
                tensor.type != schema.TensorType.INT8
                or buffer.data is None
                or quant is None
                or quant.scale is None
            ):
                continue
            stored = np.asarray(buffer.data, np.uint8).view(np.int8)
            values = stored.reshape(tensor.shape).astype(np.float32)
            shape = [1] * values.ndim
            scale = np.asarray(quant.scale, np.float32)
            if scale.size > 1:
                shape[quant.quantizedDimension] = scale.size
            zero = np.asarray(quant.zeroPoint, np.float32).reshape(shape)
            values = (values - zero) * scale.reshape(shape)
            data = np.frombuffer(values.tobytes(), np.uint8)
            if users[tensor.buffer] > 1:
                # others still read the int8 bytes: this tensor gets its own
                users[tensor.buffer] -= 1
                buffer = schema.BufferT()
                model.buffers.append(buffer)
                tensor.buffer = len(model.buffers) - 1
            buffer.data = data
            tensor.type = schema.TensorType.FLOAT32
            tensor.quantization = None
            changed += 1
    if not changed:
        return model_content
    return flatbuffer_utils.convert_object_to_bytearray(model)


def _describe(float_ops, float_nodes):
    parts = []
    if float_ops:
        parts.append("float ops: " + ", ".join(float_ops))
    if float_nodes:
        parts.append(f"{len(float_nodes)} float node(s)")
    return "; ".join(parts) or "every op int8"


def gpu_compatibility(model_content: bytes) -> tuple[bool | None, list[str]]:
    """Runs the TFLite Analyzer's GPU check on a model.

    Returns `(compatible, warnings)`: True/False, and the Analyzer's
    "GPU COMPATIBILITY WARNING" lines (op and reason). The Analyzer prints
    its report, so stdout is captured at the Python level and, because the
    C++ side may write to file descriptor 1 too, at the descriptor level.
    """
    tf = require("tensorflow", "export")
    buffer = io.StringIO()
    with _capture_fd1() as raw, contextlib.redirect_stdout(buffer):
        tf.lite.experimental.Analyzer.analyze(
            model_content=model_content, gpu_compatibility=True
        )
    report = buffer.getvalue() + "".join(raw)
    warnings = [
        line.strip()
        for line in report.splitlines()
        if "GPU COMPATIBILITY WARNING" in line
    ]
    compatible = "looks compatible with GPU delegate" in report and not (
        warnings
    )
    return compatible, warnings


@contextlib.contextmanager
def _capture_fd1():
    import tempfile

    captured = []
    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile(mode="w+") as sink:
        os.dup2(sink.fileno(), 1)
        try:
            yield captured
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
            sink.seek(0)
            captured.append(sink.read())
