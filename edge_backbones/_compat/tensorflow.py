"""TensorFlow's converter internals, the only place they are named.

The TFLite converter has no public API for: stopping after calibration
(`_experimental_calibrate_only`), quantizing a calibrated model with ops
or nodes left float (`convert.mlir_quantize`), making a quantized model's
I/O integer (`util.modify_model_io_type`), its error type
(`convert_phase.ConverterError`), the flatbuffer schema classes
(`schema_py_generated`) and TF's own interpreter module.
"""

from typing import Any

from edge_backbones._compat._versions import unchecked

__all__ = [
    "CHECKED_ON",
    "INTERPRETER_MODULE",
    "calibrate_only",
    "converter_error",
    "mlir_quantize",
    "modify_model_io_type",
    "schema",
    "version_problem",
]

CHECKED_ON = ("2.21",)
# the module holding TF's own Interpreter, load_delegate, OpResolverType
INTERPRETER_MODULE = "tensorflow.lite.python.interpreter"


def version_problem() -> str | None:
    """None, or why the installed TensorFlow needs re-checking here."""
    return unchecked("tensorflow", "tensorflow", CHECKED_ON)


def converter_error() -> type[Exception]:
    """The exception class a failed TFLite conversion raises."""
    from tensorflow.lite.python.convert_phase import ConverterError

    return ConverterError  # type: ignore[no-any-return]


def calibrate_only(converter: Any) -> None:
    """Makes `converter.convert()` stop after calibration: the model it
    returns holds the measured ranges, to quantize later per variant."""
    converter._experimental_calibrate_only = True


def mlir_quantize(
    calibrated: bytes,
    denylisted_ops: list[str] | None,
    denylisted_nodes: list[str] | None,
) -> bytes:
    """A calibrated model quantized to int8, the listed ops and nodes
    (output tensor names) left float."""
    from tensorflow.lite.python import convert as tflite_convert

    return tflite_convert.mlir_quantize(  # type: ignore[no-any-return]
        calibrated,
        denylisted_ops=denylisted_ops,
        denylisted_nodes=denylisted_nodes,
    )


def modify_model_io_type(model: bytes, dtype: Any) -> bytes:
    """The model with its float input and output tensors made `dtype`."""
    from tensorflow.lite.python import util

    return util.modify_model_io_type(  # type: ignore[no-any-return]
        model, dtype, dtype
    )


def schema() -> Any:
    """TFLite's generated flatbuffer schema module (ModelT and friends)."""
    from tensorflow.lite.python import schema_py_generated

    return schema_py_generated


def tflite_converter(converter: Any) -> Any:
    """The `tf.lite.TFLiteConverter` behind our `Converter`."""
    return converter._converter()
