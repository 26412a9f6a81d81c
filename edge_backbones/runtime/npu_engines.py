"""Run an NPU-compiled artifact on x86: the vendor's simulation, for numerics.

A model compiled by `edge-backbones compile` holds DISPATCH_OPs whose
bytecode only a vendor runtime executes. LiteRT's wheel has no Qualcomm
dispatch library, so:

- Qualcomm: the DISPATCH_OP's custom options (a flexbuffer with
  `bytecode_offset`, `bytecode_size`, `name`) locate the QNN context binary
  in the file; wrapped as an ONNX `com.microsoft.EPContext` node
  (`embed_mode=1`) it runs with ONNX Runtime's QNN execution provider on
  `libQnnHtp.so`, whose x86 build simulates the HTP (Hexagon NPU) kernels.
- Intel: LiteRT's own OpenVINO dispatch library runs the partition on
  OpenVINO's CPU device.

Both reproduce the accelerator's arithmetic, not its speed: a latency
measured here is the simulator's, never a phone's or a laptop NPU's.
Engines follow `runtime.engines.CompiledModelEngine`: bind(), run(), invoke().
"""

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from edge_backbones.errors import DelegateUnavailableError, require
from edge_backbones.runtime.engines import CompiledModelEngine

__all__ = [
    "NPU_NUMERICS_LABEL",
    "OpenVinoCpuEngine",
    "QnnHtpSimulatorEngine",
    "open_npu_engine",
    "qnn_tensor_name",
]

NPU_NUMERICS_LABEL = "NPU numerics (simulated)"
_DISPATCH = "DISPATCH_OP"
_ONNX_TYPES = {"int8": 3, "uint8": 2, "int16": 5, "float32": 1}
_TFLITE_TYPES = {9: "int8", 3: "uint8", 7: "int16", 0: "float32"}


def _read_flatbuffer(model_path: str) -> tuple[bytes, Any]:
    from ai_edge_litert import schema_py_generated as schema

    with open(model_path, "rb") as f:
        content = f.read()
    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    return content, model


def _dispatch_op(model: Any, model_path: str) -> Any:
    """The single DISPATCH_OP of a fully offloaded graph, or an error."""
    subgraph = model.subgraphs[0]
    codes = model.operatorCodes
    kinds = [codes[op.opcodeIndex].customCode for op in subgraph.operators]
    if kinds != [_DISPATCH.encode()]:
        raise DelegateUnavailableError(
            f"{model_path!r} is not fully offloaded ({len(kinds)} ops, "
            f"{kinds.count(_DISPATCH.encode())} NPU partitions): the x86 "
            "simulation runs only graphs that the NPU takes whole. See the "
            "`compiled.cpu_op_kinds` metadata for the ops left on the CPU."
        )
    return subgraph.operators[0]


def qnn_tensor_name(tensor_name: str) -> str:
    # LiteRT's Qualcomm plugin names QNN graph tensors after the TFLite
    # tensors with each run of characters outside [A-Za-z0-9_] replaced by
    # one "_" ("tfl.quantize" -> "tfl_quantize", "MatMul;;x" -> "MatMul_x")
    return re.sub(r"[^A-Za-z0-9_]+", "_", tensor_name)


_QNN_PROVIDER_REGISTERED: list[bool] = []


def _qnn_session_options(num_threads: int | None) -> tuple[Any, Any]:
    ort = require("onnxruntime", "npu")
    qnn = require("onnxruntime_qnn", "npu")
    if not _QNN_PROVIDER_REGISTERED:
        ort.register_execution_provider_library(
            qnn.get_ep_name(), qnn.get_library_path()
        )
        _QNN_PROVIDER_REGISTERED.append(True)
    devices = [
        d for d in ort.get_ep_devices() if d.ep_name == qnn.get_ep_name()
    ]
    options = ort.SessionOptions()
    options.log_severity_level = 3  # the EP's Windows-only feature notes
    if num_threads:
        options.intra_op_num_threads = num_threads
    options.add_provider_for_devices(
        devices, {"backend_path": qnn.get_qnn_htp_path()}
    )
    return ort, options


class QnnHtpSimulatorEngine:
    """A Qualcomm-compiled artifact in QNN's x86 HTP simulation."""

    name = "qnn-htp-simulator"
    backend = "QNN HTP simulated"

    def __init__(self, model_path: str, num_threads: int | None = None) -> None:
        require("onnx", "npu")
        content, model = _read_flatbuffer(model_path)
        from flatbuffers import flexbuffers

        op = _dispatch_op(model, model_path)
        options = flexbuffers.Loads(bytes(op.customOptions))
        start = options["bytecode_offset"]
        context = content[start : start + options["bytecode_size"]]
        tensors = model.subgraphs[0].tensors
        self._qnn_names = {
            i: qnn_tensor_name(tensors[i].name.decode())
            for i in range(len(tensors))
        }
        missing = [
            self._qnn_names[i]
            for i in [*op.inputs, *op.outputs]
            if self._qnn_names[i].encode() not in context
        ]
        if missing:
            raise DelegateUnavailableError(
                f"The QNN context binary in {model_path!r} has no tensors "
                f"named {missing}: a plugin version that names tensors "
                "differently. Compile again with the pinned ai-edge-litert."
            )
        graph = _epcontext_model(
            op, tensors, self._qnn_names, context, options["name"]
        )
        ort, session_options = _qnn_session_options(num_threads)
        try:
            self._session = ort.InferenceSession(graph, session_options)
        except Exception as exc:  # noqa: BLE001 - ORT raises its own types
            raise DelegateUnavailableError(
                f"ONNX Runtime's QNN HTP backend could not load the context "
                f"binary of {model_path!r}: {exc}"
            ) from exc
        self.signatures = {
            s.signatureKey.decode(): (
                {t.name.decode(): t.tensorIndex for t in s.inputs},
                {t.name.decode(): t.tensorIndex for t in s.outputs},
            )
            for s in model.signatureDefs or []
        }
        self.fully_delegated: bool | None = True
        self.cpu_ops: list[str] | None = []

    def bind(
        self,
        signature_key: str | None,
        input_name: str,
        outputs: Sequence[tuple[str, tuple[int, ...], np.dtype[Any]]],
    ) -> None:
        inputs, output_indices = self.signatures[signature_key]
        self._input = self._qnn_names[inputs[input_name]]
        self._outputs = [
            self._qnn_names[output_indices[name]] for name, _, _ in outputs
        ]

    def run(self, x: npt.NDArray[Any]) -> list[npt.NDArray[Any]]:
        self._last = x
        outputs: list[npt.NDArray[Any]] = self._session.run(
            self._outputs, {self._input: x}
        )
        return outputs

    def invoke(self) -> None:
        self.run(self._last)

    def run_signature(
        self,
        signature_key: str,
        feeds: Mapping[str, npt.NDArray[Any]],
        outputs: Sequence[str],
    ) -> dict[str, npt.NDArray[Any]]:
        """{output: array} of a multi-input signature, by its names."""
        inputs, output_indices = self.signatures[signature_key]
        named = self.run_named(
            [self._qnn_names[output_indices[name]] for name in outputs],
            {
                self._qnn_names[inputs[name]]: value
                for name, value in feeds.items()
            },
        )
        return dict(zip(outputs, named, strict=True))

    def run_named(
        self, outputs: Sequence[str], feeds: Mapping[str, npt.NDArray[Any]]
    ) -> list[npt.NDArray[Any]]:
        """Outputs by QNN tensor name, from feeds by QNN tensor name."""
        named: list[npt.NDArray[Any]] = self._session.run(outputs, feeds)
        return named


def _value_info(tensor: Any, qnn_name: str) -> Any:
    from onnx import helper

    dtype = _TFLITE_TYPES.get(tensor.type)
    if dtype is None:
        raise DelegateUnavailableError(
            f"Tensor {qnn_name} has TFLite type {tensor.type}, which this "
            "simulator wrapper does not map to ONNX."
        )
    shape = [int(d) for d in tensor.shape]
    return helper.make_tensor_value_info(qnn_name, _ONNX_TYPES[dtype], shape)


def _epcontext_model(
    op: Any,
    tensors: Sequence[Any],
    names: Mapping[int, str],
    context: bytes,
    partition_name: str,
) -> bytes:
    """A one-node ONNX model holding the QNN context binary (serialized)."""
    from onnx import helper

    inputs = [_value_info(tensors[i], names[i]) for i in op.inputs]
    outputs = [_value_info(tensors[i], names[i]) for i in op.outputs]
    node = helper.make_node(
        "EPContext",
        [v.name for v in inputs],
        [v.name for v in outputs],
        # QNN EP finds the graph in the context by the node's name
        name=partition_name,
        domain="com.microsoft",
        embed_mode=1,
        ep_cache_context=context,
        main_context=1,
        source="Qnn",
    )
    graph = helper.make_graph([node], "litert_dispatch", inputs, outputs)
    model = helper.make_model(
        graph,
        opset_imports=[
            helper.make_opsetid("", 17),
            helper.make_opsetid("com.microsoft", 1),
        ],
    )
    serialized: bytes = model.SerializeToString()
    return serialized


class OpenVinoCpuEngine(CompiledModelEngine):
    """An OpenVINO-compiled artifact through LiteRT's OpenVINO dispatch."""

    name = "openvino-cpu"
    backend = "OpenVINO CPU"

    def __init__(self, model_path: str, num_threads: int | None = None) -> None:
        require("openvino", "npu")
        import ai_edge_litert
        from ai_edge_litert import compiled_model
        from ai_edge_litert.environment import Environment
        from ai_edge_litert.hardware_accelerator import HardwareAccelerator
        from ai_edge_litert.options import CpuOptions, Options

        root = os.path.dirname(ai_edge_litert.__file__)
        environment = Environment.create(
            runtime_path=root,
            dispatch_library_path=os.path.join(
                root, "vendors", "intel_openvino", "dispatch"
            ),
        )
        options = Options(
            hardware_accelerators=HardwareAccelerator.NPU
            | HardwareAccelerator.CPU,
            cpu_options=CpuOptions(num_threads=num_threads or 0),
        )
        try:
            self._model = compiled_model.CompiledModel.from_file(
                model_path, environment=environment, options=options
            )
        except RuntimeError as exc:
            raise DelegateUnavailableError(
                f"LiteRT's OpenVINO dispatch could not load {model_path!r}: "
                f"{exc}"
            ) from exc
        self._environment = environment
        self.fully_delegated = bool(self._model.is_fully_accelerated())
        self.cpu_ops = None


_ENGINES: dict[str, type[QnnHtpSimulatorEngine | OpenVinoCpuEngine]] = {
    "qualcomm": QnnHtpSimulatorEngine,
    "intel": OpenVinoCpuEngine,
}


def open_npu_engine(
    model_path: str,
    metadata: Mapping[str, Any] | None,
    num_threads: int | None = None,
) -> QnnHtpSimulatorEngine | OpenVinoCpuEngine | None:
    """The simulation engine for a compiled artifact; None if not compiled.

    Raises:
        DelegateUnavailableError: compiled for a vendor with no simulation
            here, or its simulation cannot load the file.
        MissingDependencyError: the `npu` extra is not installed.
    """
    compiled = (metadata or {}).get("compiled")
    if not compiled:
        return None
    vendor = str(compiled.get("vendor", "")).lower()
    engine = _ENGINES.get(vendor.split()[0] if vendor else "")
    if engine is None:
        raise DelegateUnavailableError(
            f"{model_path!r} is compiled for {compiled.get('soc')} "
            f"({compiled.get('vendor')}); only Qualcomm (QNN HTP simulator) "
            "and Intel (OpenVINO CPU) artifacts run on this machine. Run it "
            "on the device, or run the exported artifact it came from."
        )
    return engine(model_path, num_threads)
