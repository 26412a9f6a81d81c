"""Reads a .tflite file's structure without TensorFlow or an interpreter.

A .tflite file is a FlatBuffer (tensorflow/compiler/mlir/lite/schema/
schema.fbs). This walks just the fields we need with `struct`: operator
codes, operators, tensor shapes and types, and the `metadata` entries (name
-> buffer) where the exporter embeds our JSON. Pure Python, so it works on a
Raspberry Pi that has only `tflite-runtime`.
"""

import collections
import dataclasses
import os
import struct
from collections.abc import Iterable
from typing import Any

from edge_backbones.errors import ModelFileError

__all__ = [
    "TFLiteModelFile",
    "read_model_file",
    "builtin_op_name",
    "operator_builtin",
]

_IDENTIFIER = b"TFL3"

# FlatBuffer field ids (schema.fbs)
_MODEL_OPERATOR_CODES, _MODEL_SUBGRAPHS, _MODEL_BUFFERS = 1, 2, 4
_MODEL_METADATA = 6
_OPCODE_DEPRECATED_BUILTIN, _OPCODE_CUSTOM, _OPCODE_BUILTIN = 0, 1, 3
_SUBGRAPH_TENSORS, _SUBGRAPH_OPERATORS = 0, 3
_OPERATOR_OPCODE_INDEX, _OPERATOR_INPUTS, _OPERATOR_OUTPUTS = 0, 1, 2
_TENSOR_SHAPE, _TENSOR_TYPE, _TENSOR_NAME = 0, 1, 3
_METADATA_NAME, _METADATA_BUFFER = 0, 1
_BUFFER_DATA, _BUFFER_OFFSET, _BUFFER_SIZE = 0, 1, 2

# TensorType enum values, in order from 0
TENSOR_TYPES: dict[int, str] = dict(
    enumerate(
        """
        float32 float16 int32 uint8 int64 string bool int16 complex64 int8
        float64 complex128 uint64 resource variant uint32 uint16 int4
        """.split()
    )
)


# the ops this package reads by name (MAC counts, float handoffs), for a
# runtime whose interpreter package ships no schema module
_KNOWN_BUILTINS = {
    **{3: "CONV_2D", 4: "DEPTHWISE_CONV_2D", 6: "DEQUANTIZE"},
    **{9: "FULLY_CONNECTED", 114: "QUANTIZE", 126: "BATCH_MATMUL"},
}


def operator_builtin(code: Any) -> int:
    """The BuiltinOperator of an `OperatorCode` object (the flatbuffer
    object API of LiteRT's or TensorFlow's schema): a code below 127 may
    sit in the deprecated int8 field only, a newer one in the int32 field
    only."""
    return int(max(code.builtinCode, code.deprecatedBuiltinCode))


def builtin_op_name(code: int) -> str:
    """The BuiltinOperator name of `code`, from the installed schema.

    Never from TensorFlow's copy of the schema: importing it would import
    TensorFlow into the TF-free runtime.
    """
    for package in ("ai_edge_litert", "tflite_runtime"):
        module = f"{package}.schema_py_generated"
        try:
            schema = __import__(module, fromlist=["BuiltinOperator"])
        except ImportError:
            continue
        names: dict[int, str] = {
            value: key
            for key, value in vars(schema.BuiltinOperator).items()
            if not key.startswith("_")
        }
        return names.get(code, f"BUILTIN_{code}")
    return _KNOWN_BUILTINS.get(code, f"BUILTIN_{code}")


class _Table:
    def __init__(self, buf: bytes, pos: int) -> None:
        self.buf = buf
        self.pos = pos
        vtable = pos - struct.unpack_from("<i", buf, pos)[0]
        self._vt_size = struct.unpack_from("<H", buf, vtable)[0]
        self._vtable = vtable

    def _field(self, field_id: int) -> int:
        entry = 4 + 2 * field_id
        if entry >= self._vt_size:
            return 0
        return int(struct.unpack_from("<H", self.buf, self._vtable + entry)[0])

    def scalar(self, field_id: int, fmt: str, default: int = 0) -> int:
        offset = self._field(field_id)
        if not offset:
            return default
        return int(
            struct.unpack_from("<" + fmt, self.buf, self.pos + offset)[0]
        )

    def _indirect(self, field_id: int) -> int | None:
        offset = self._field(field_id)
        if not offset:
            return None
        at = self.pos + offset
        return at + int(struct.unpack_from("<I", self.buf, at)[0])

    def vector(self, field_id: int) -> tuple[int, int]:
        """(start, length) of a vector field, or (0, 0) if absent."""
        at = self._indirect(field_id)
        if at is None:
            return 0, 0
        return at + 4, int(struct.unpack_from("<I", self.buf, at)[0])

    def scalars(self, field_id: int, fmt: str) -> list[int]:
        start, length = self.vector(field_id)
        size = struct.calcsize(fmt)
        return [
            struct.unpack_from("<" + fmt, self.buf, start + i * size)[0]
            for i in range(length)
        ]

    def tables(self, field_id: int) -> list["_Table"]:
        start, length = self.vector(field_id)
        out = []
        for i in range(length):
            at = start + 4 * i
            out.append(
                _Table(self.buf, at + struct.unpack_from("<I", self.buf, at)[0])
            )
        return out

    def string(self, field_id: int) -> str | None:
        start, length = self.vector(field_id)
        if not length and start == 0:
            return None
        return bytes(self.buf[start : start + length]).decode("utf-8")

    def bytes(self, field_id: int) -> bytes:
        start, length = self.vector(field_id)
        return bytes(self.buf[start : start + length])


@dataclasses.dataclass
class TFLiteModelFile:
    """What a .tflite file holds, read without running it."""

    ops: list[str]  # operator names in execution order (main subgraph first)
    tensor_shapes: list[tuple[int, ...]]  # every tensor's shape
    tensor_types: list[str]  # TENSOR_TYPES names: "float32", "int8", ...
    metadata: dict[str, bytes]  # name -> bytes
    # per op in `ops`: (input, output) tensor indices into `tensor_shapes`
    # (-1 = an omitted optional input); lets callers count MACs from shapes
    op_io: list[tuple[tuple[int, ...], tuple[int, ...]]] = dataclasses.field(
        default_factory=list
    )
    # name -> (start, end) byte offsets of each metadata entry in the file
    metadata_spans: dict[str, tuple[int, int]] = dataclasses.field(
        default_factory=dict
    )

    @property
    def op_count(self) -> int:
        return len(self.ops)

    @property
    def op_histogram(self) -> dict[str, int]:
        """Op name -> count, most frequent first."""
        return dict(collections.Counter(self.ops).most_common())

    @property
    def float_handoffs(self) -> dict[str, int]:
        """Ops that move a tensor between float and integer, by name.

        Every DEQUANTIZE, and each QUANTIZE whose input is float. A QUANTIZE
        from an integer tensor is an integer requantize (e.g. uint8 input to
        int8, or a change of scale), which integer-only accelerators run.
        """
        handoffs: collections.Counter[str] = collections.Counter()
        for op, (inputs, _) in zip(self.ops, self.op_io, strict=True):
            if op == "DEQUANTIZE" or (
                op == "QUANTIZE"
                and self.tensor_types[inputs[0]] in ("float32", "float16")
            ):
                handoffs[op] += 1
        return dict(handoffs)

    @property
    def max_tensor_rank(self) -> int:
        return max((len(s) for s in self.tensor_shapes), default=0)


def read_model_file(
    source: str | os.PathLike[str] | bytes | bytearray | memoryview,
) -> TFLiteModelFile:
    """Parses a .tflite path or bytes; a clear ModelFileError if it is not.

    Raises:
        ModelFileError: no such file, or an empty, truncated or non-TFLite
            one.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        buf, where = bytes(source), "the given bytes"
    else:
        where = repr(str(source))
        try:
            with open(source, "rb") as f:
                buf = f.read()
        except FileNotFoundError as exc:
            raise ModelFileError(
                f"No model file at {where}. Check the path, or export one "
                "with `edge-backbones export`."
            ) from exc
        except OSError as exc:
            raise ModelFileError(f"Cannot read {where}: {exc}.") from exc
    if len(buf) == 0:
        raise ModelFileError(
            f"{where} is empty (0 bytes): an interrupted copy or export? "
            "Export it again."
        )
    if len(buf) < 8 or buf[4:8] != _IDENTIFIER:
        raise ModelFileError(
            f"{where} is not a TFLite model (no 'TFL3' FlatBuffer identifier"
            f" in its first 8 bytes; it has {len(buf)} bytes). Pass a .tflite"
            " file written by a TFLite converter."
        )
    try:
        return _parse(buf)
    except (struct.error, IndexError, UnicodeDecodeError) as exc:
        raise ModelFileError(
            f"{where} is truncated or corrupt ({len(buf)} bytes; {exc}). "
            "Export or copy it again."
        ) from exc


def _parse(buf: bytes) -> TFLiteModelFile:
    model = _Table(buf, struct.unpack_from("<I", buf, 0)[0])
    op_names: list[str] = []
    for code in model.tables(_MODEL_OPERATOR_CODES):
        builtin = max(
            code.scalar(_OPCODE_BUILTIN, "i"),
            code.scalar(_OPCODE_DEPRECATED_BUILTIN, "b"),
        )
        custom = code.string(_OPCODE_CUSTOM)
        op_names.append(
            f"CUSTOM:{custom}" if custom else builtin_op_name(builtin)
        )
    ops: list[str] = []
    shapes: list[tuple[int, ...]] = []
    types: list[str] = []
    op_io: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
    for subgraph in model.tables(_MODEL_SUBGRAPHS):
        # tensor indices are per subgraph; shift them into the flat lists
        base = len(shapes)

        def shifted(
            indices: Iterable[int], base: int = base
        ) -> tuple[int, ...]:
            return tuple(i + base if i >= 0 else -1 for i in indices)

        for op in subgraph.tables(_SUBGRAPH_OPERATORS):
            ops.append(op_names[op.scalar(_OPERATOR_OPCODE_INDEX, "I")])
            op_io.append(
                (
                    shifted(op.scalars(_OPERATOR_INPUTS, "i")),
                    shifted(op.scalars(_OPERATOR_OUTPUTS, "i")),
                )
            )
        for tensor in subgraph.tables(_SUBGRAPH_TENSORS):
            shapes.append(tuple(tensor.scalars(_TENSOR_SHAPE, "i")))
            types.append(
                TENSOR_TYPES.get(tensor.scalar(_TENSOR_TYPE, "b"), "unknown")
            )
    buffers = model.tables(_MODEL_BUFFERS)
    metadata: dict[str, bytes] = {}
    spans: dict[str, tuple[int, int]] = {}
    for entry in model.tables(_MODEL_METADATA):
        buffer = buffers[entry.scalar(_METADATA_BUFFER, "I")]
        offset = buffer.scalar(_BUFFER_OFFSET, "Q")
        if offset > 1:  # large models keep buffers after the FlatBuffer
            start, size = offset, buffer.scalar(_BUFFER_SIZE, "Q")
        else:
            start, size = buffer.vector(_BUFFER_DATA)
        if start + size > len(buf):
            raise IndexError("metadata buffer ends past the file's end")
        name = entry.string(_METADATA_NAME) or ""
        metadata[name] = bytes(buf[start : start + size])
        spans[name] = (start, start + size)
    return TFLiteModelFile(ops, shapes, types, metadata, op_io, spans)
