"""`EdgeModel`: one exported backbone, run with numpy and a TFLite interpreter.

Outputs are looked up by their SignatureDef names (the pyramid levels), not
by position: the converter reorders output tensors. One interpreter is
created per model, allocated once at its fixed input shape, and reused;
calls from several threads take turns on it.
"""

import dataclasses
import os
import threading
import warnings
from collections.abc import Iterable, Mapping
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from edge_backbones.core.artifact import ArtifactMetadata
from edge_backbones.core.preprocessing import validate_preprocessing
from edge_backbones.errors import (
    DelegateUnavailableError,
    InputError,
    MetadataError,
    ModelFileError,
)
from edge_backbones.runtime import delegates as delegates_lib
from edge_backbones.runtime.backends import Backend, load_backend
from edge_backbones.runtime.class_map import CLASSES, LOGITS, class_map
from edge_backbones.runtime.delegates import DelegateEntry, DelegateName
from edge_backbones.runtime.engines import (
    CompiledModelEngine,
    InterpreterEngine,
    SignatureEngine,
    accelerator_available,
)
from edge_backbones.runtime.known_faults import tflite_runtime_fault
from edge_backbones.runtime.metadata import load_metadata, validate_metadata
from edge_backbones.runtime.model_file import read_model_file
from edge_backbones.runtime.npu_engines import open_npu_engine
from edge_backbones.runtime.preprocess import ImageLike, preprocess

__all__ = ["EdgeModel", "Outputs", "TensorSpec"]

# what a model returns: output (pyramid level) name -> float32 array, in
# the exporter's fine-to-coarse order
Outputs: TypeAlias = dict[str, npt.NDArray[np.float32]]

_SIGNATURE = "serving_default"
# delegate kinds that run the interpreter's own kernels: which op resolver
_RESOLVERS = {
    "reference": "BUILTIN_WITHOUT_DEFAULT_DELEGATES",
    "portable": "BUILTIN_REF",
}


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """A model input or output as the interpreter reports it."""

    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy dtype name: "float32", "int8", "uint8", ...
    # {"scale": float, "zero_point": int}; None if float
    quantization: dict[str, float] | None


def _tensor_spec(
    name: str, details: Mapping[str, Any], model_path: str
) -> TensorSpec:
    # `quantization_parameters`, not the deprecated `quantization` pair: the
    # pair reads (0.0, 0) for a per-channel tensor, i.e. "float"
    params = details["quantization_parameters"]
    scales, zero_points = params["scales"], params["zero_points"]
    if len(scales) > 1:
        raise ModelFileError(
            f"{model_path!r}: tensor {name!r} is quantized per channel "
            f"({len(scales)} scales on axis "
            f"{params['quantized_dimension']}); a model's inputs and outputs "
            "take one scale and zero point. Export it again with "
            "edge_backbones, whose int8 I/O is quantized per tensor."
        )
    quantization = None
    if len(scales) and scales[0]:
        quantization = {
            "scale": float(scales[0]),
            "zero_point": int(zero_points[0]),
        }
    return TensorSpec(
        name,
        tuple(int(d) for d in details["shape"]),
        np.dtype(details["dtype"]).name,
        quantization,
    )


def _dequantization(
    spec: TensorSpec,
) -> tuple[np.float32, np.float32] | tuple[None, None]:
    """(scale, zero point) as float32 to dequantize `spec`'s values, or
    (None, None) for a float tensor."""
    if spec.quantization is None:
        return None, None
    return (
        np.float32(spec.quantization["scale"]),
        np.float32(spec.quantization["zero_point"]),
    )


class EdgeModel:
    """An exported .tflite backbone: `model(x)` -> {level: float32 array}.

    Args:
        model_path: the .tflite file.
        delegates: where to run, in order of precedence: "xnnpack" (the
            default CPU path), "cpu" (builtin kernels), "portable"
            (TFLite's reference kernels: slow, architecture-independent),
            "gpu", "nnapi", "edgetpu", a delegate library path, or (name,
            options). A delegate that fails to load falls back to the next
            one with a single `DelegateFallbackWarning`; if all fail,
            XNNPACK runs.
        num_threads: CPU threads; None keeps the interpreter's default
            (one thread in LiteRT 2.x).
        strict: raise `DelegateUnavailableError` instead of falling back.
        backend: "litert", "tflite_runtime" or "tf"; None takes the first
            one installed, in that order.
        preprocessing: a preprocessing dict (see `runtime.preprocess`) for
            models exported without our metadata; overrides the metadata.
        verify_integrity: check, before the interpreter sees the file, the
            sha256 its metadata recorded at export (or its sidecar's), and
            raise `IntegrityError` on a mismatch. `model.integrity` says
            which check ran: "embedded-sha256", "sidecar-sha256", "none
            recorded" (older exports) or "skipped" (False: saves one pass
            over the file, ~30 ms per 10 MB here).
        allow_nonfinite: let NaN/Inf values through to a float-input model
            (they raise `InputError` by default: they would spread through
            every feature). Never allowed for int8/uint8 inputs, where they
            have no quantized value.

    Raises:
        ModelFileError: a missing, damaged or unloadable model file.
        IntegrityError: the file differs from the hash recorded at export.
        MetadataError: metadata that is malformed or disagrees with the
            model, or a malformed `preprocessing`.
        DelegateUnavailableError: an unknown delegate, or (`strict`) one
            that failed to load.
        InputError: a bad `num_threads` or `backend`.
        MissingDependencyError: no interpreter package is installed.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        delegates: DelegateName | Iterable[DelegateEntry] = ("xnnpack",),
        num_threads: int | None = None,
        strict: bool = False,
        backend: str | None = None,
        preprocessing: Mapping[str, Any] | None = None,
        verify_integrity: bool = True,
        allow_nonfinite: bool = False,
    ) -> None:
        self.model_path = os.fspath(model_path)
        # a bad file gets a clear error here instead of an interpreter abort
        self.model_file = read_model_file(self.model_path)
        self.metadata, self.integrity = load_metadata(
            self.model_path, self.model_file, verify=verify_integrity
        )
        self.allow_nonfinite = bool(allow_nonfinite)
        if num_threads is not None and (
            isinstance(num_threads, bool)
            or not isinstance(num_threads, int)
            or num_threads < 1
        ):
            raise InputError(
                f"num_threads must be a positive int or None; got "
                f"{num_threads!r}."
            )
        self.num_threads = num_threads
        self.backend: Backend = load_backend(backend)
        if delegates is None:
            raise DelegateUnavailableError(
                "delegates=None: pass where to run, in order of precedence, "
                "e.g. ('xnnpack',) (the default CPU path) or "
                "('gpu', 'xnnpack')."
            )
        specs = delegates_lib.parse_delegates(delegates)
        # an NPU-compiled artifact runs in its vendor's x86 simulation
        npu_engine = open_npu_engine(
            self.model_path, self.metadata, num_threads
        )
        self._engine: InterpreterEngine | SignatureEngine
        self.active_delegate: str
        # the vendor simulation an NPU-compiled artifact runs in (e.g.
        # "QNN HTP simulated"), or None: its figures are numerics only
        self.npu_backend: str | None = None
        if npu_engine is not None:
            self._engine, self.active_delegate = npu_engine, npu_engine.name
            self.npu_backend = npu_engine.backend
        else:
            self._engine, self.active_delegate = self._open(specs, strict)
        self._bind_signature()
        if self.metadata is not None:
            validate_metadata(self.metadata, self.input_spec, self.output_specs)
        if preprocessing is None and self.metadata is not None:
            preprocessing = self.metadata["input"].get("preprocessing")
        self.preprocessing = (
            None
            if preprocessing is None
            else validate_preprocessing(preprocessing)
        )
        task = (self.metadata or {}).get("task") or {}
        # a segmenter whose graph leaves its class map to the host (see
        # runtime.class_map)
        self._host_classes = (
            task.get("kind") == "segmentation"
            and CLASSES not in self.output_specs
            and LOGITS in self.output_specs
        )
        self._classes_at = task.get("classes_at", "logits")
        self._lock = threading.Lock()

    # -- construction ---------------------------------------------------

    def _open(
        self, specs: Iterable[delegates_lib.DelegateSpec], strict: bool
    ) -> tuple[InterpreterEngine | CompiledModelEngine, str]:
        failures = []
        for spec in specs:
            try:
                engine = self._create(spec)
            except DelegateUnavailableError as exc:
                if strict:
                    raise
                failures.append(str(exc))
                continue
            break
        else:
            # every requested delegate failed: the default CPU path is the
            # floor
            spec = delegates_lib.DelegateSpec("xnnpack", "default")
            engine = self._create(spec)
        if failures:
            warnings.warn(
                f"{' '.join(failures)} Running on {spec.name!r} instead; "
                "pass strict=True to raise.",
                delegates_lib.DelegateFallbackWarning,
                stacklevel=3,
            )
        return engine, spec.name

    def _create(
        self, spec: delegates_lib.DelegateSpec
    ) -> InterpreterEngine | CompiledModelEngine:
        backend = self.backend
        reasons = []
        if (
            spec.name == "gpu"
            and not delegates_lib.library_overridden(spec)
            and accelerator_available(backend)
        ):
            try:
                return CompiledModelEngine(
                    self.model_path, "gpu", self.num_threads
                )
            except DelegateUnavailableError as exc:
                reasons.append(str(exc))
        kwargs: dict[str, Any] = {"model_path": self.model_path}
        if self.num_threads is not None:
            kwargs["num_threads"] = self.num_threads
        if spec.kind in _RESOLVERS:
            kwargs["experimental_op_resolver_type"] = getattr(
                backend.OpResolverType, _RESOLVERS[spec.kind]
            )
        library = None
        if spec.kind == "library":
            try:
                delegate, library = delegates_lib.load_library_delegate(
                    backend, spec
                )
            except DelegateUnavailableError as exc:
                raise DelegateUnavailableError(
                    " ".join([*reasons, str(exc)])
                ) from exc
            kwargs["experimental_delegates"] = [delegate]
        try:
            interpreter = backend.Interpreter(**kwargs)
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            if library is not None:
                raise DelegateUnavailableError(
                    f"The {spec.name!r} delegate ({library}) loaded but "
                    f"could not run this graph: {exc}"
                ) from exc
            fix = "Upgrade ai-edge-litert or export again."
            if backend.name != "litert":
                # tflite-runtime stopped at 2.14 (2023): newer converters
                # write op versions it never learnt
                fix = (
                    f"{backend.name} {backend.version} predates ops this "
                    "export uses; run it with ai-edge-litert "
                    "(backend='litert')."
                )
            raise ModelFileError(
                f"The {backend.name} interpreter cannot load "
                f"{self.model_path!r}: {exc}. Was it exported for a newer "
                f"runtime or with custom ops? {fix}"
            ) from exc
        self._refuse_known_fault(interpreter, spec)
        return InterpreterEngine(interpreter)

    def _refuse_known_fault(
        self, interpreter: Any, spec: delegates_lib.DelegateSpec
    ) -> None:
        # a segfault in invoke would kill the caller with no Python error
        if self.backend.name != "tflite_runtime":
            return
        portable = spec.kind == "portable"
        reason = tflite_runtime_fault(interpreter, portable)
        if reason and portable:
            raise DelegateUnavailableError(
                f"{self.model_path!r} has {reason}. Use the 'cpu' or "
                "'xnnpack' kernels, or ai-edge-litert (backend='litert')."
            )
        if reason:
            raise ModelFileError(
                f"{self.model_path!r} has {reason}. Export it again with "
                "this edge_backbones (it adds a zero bias to those ops), or "
                "run it with ai-edge-litert (backend='litert')."
            )

    def _bind_signature(self) -> None:
        if isinstance(self._engine, InterpreterEngine):
            interpreter = self._engine.interpreter
        else:
            # CompiledModel reports no quantization parameters; a plain
            # interpreter (never allocated) reads them from the file
            interpreter = self.backend.Interpreter(model_path=self.model_path)
        key, inputs, outputs = self._signature_io(interpreter)
        input_name, details = self._single_input(interpreter, inputs)
        self.input_spec = _tensor_spec(input_name, details, self.model_path)
        order = list(outputs)
        if self.metadata is not None:
            # the exporter lists levels fine to coarse; keep that order
            order = [n for n in self.metadata["outputs"] if n in outputs]
            order += [n for n in outputs if n not in order]
        self.output_specs = {
            n: _tensor_spec(n, outputs[n], self.model_path) for n in order
        }
        self._dequantize = [
            (name, *_dequantization(spec))
            for name, spec in self.output_specs.items()
        ]
        if isinstance(self._engine, InterpreterEngine):
            self._engine.bind(details, [outputs[n] for n in order])
        else:
            shapes = [
                (n, s.shape, np.dtype(s.dtype))
                for n, s in self.output_specs.items()
            ]
            self._engine.bind(key, input_name, shapes)

    def _signature_io(
        self, interpreter: Any
    ) -> tuple[str | None, dict[str, Any], dict[str, Any]]:
        """(signature key or None, input details, output details by name)."""
        signatures = interpreter.get_signature_list()
        if not signatures:
            if self.metadata is not None:
                raise ModelFileError(
                    f"{self.model_path!r} has edge_backbones metadata but no "
                    "SignatureDef, which names its outputs (P1, P2, ...): a "
                    "tool stripped it (e.g. a flatbuffer rewrite or "
                    "optimizer). Use the exported file as written, or export "
                    "it again."
                )
            # models converted without a SignatureDef keep tensor names
            inputs = {d["name"]: d for d in interpreter.get_input_details()}
            outputs = {d["name"]: d for d in interpreter.get_output_details()}
            return None, inputs, outputs
        key = _SIGNATURE if _SIGNATURE in signatures else next(iter(signatures))
        runner = interpreter.get_signature_runner(key)
        inputs = runner.get_input_details()
        outputs = runner.get_output_details()
        # a live runner holds a reference that makes invoke() refuse to run,
        # so only its name -> tensor maps are kept
        del runner
        return key, inputs, outputs

    def _single_input(
        self, interpreter: Any, inputs: Mapping[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        """The (name, details) of the one input, on the main subgraph."""
        if len(inputs) != 1:
            raise ModelFileError(
                f"{self.model_path!r} has {len(inputs)} inputs "
                f"({sorted(inputs)}); an image backbone takes exactly one."
            )
        main_inputs = {d["index"] for d in interpreter.get_input_details()}
        input_name, details = next(iter(inputs.items()))
        if details["index"] not in main_inputs:
            raise ModelFileError(
                f"The signature of {self.model_path!r} runs a subgraph other "
                "than the first, which this runtime does not drive. Export "
                "the model with a single serving signature."
            )
        return input_name, details

    # -- properties -----------------------------------------------------

    @property
    def artifact(self) -> ArtifactMetadata | None:
        """The metadata as a typed, frozen `core.artifact.ArtifactMetadata`,
        or None if the model has none."""
        if self.metadata is None:
            return None
        return ArtifactMetadata.from_dict(self.metadata)

    @property
    def output_names(self) -> list[str]:
        """The output names (pyramid levels), fine to coarse."""
        return list(self.output_specs)

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) the model takes."""
        return self.input_spec.shape[1], self.input_spec.shape[2]

    @property
    def fully_delegated(self) -> bool | None:
        """True if a delegate runs every op; None if not applicable/known.

        The interpreter's own kernels ("cpu", "portable") use no delegate,
        so None.
        """
        if self.active_delegate in ("cpu", "portable"):
            return None
        return self._engine.fully_delegated

    @property
    def cpu_ops(self) -> list[str] | None:
        """Ops no delegate took (run by CPU kernels); None if unknown."""
        return self._engine.cpu_ops

    def __repr__(self) -> str:
        return (
            f"EdgeModel({self.model_path!r}, input={self.input_spec.shape} "
            f"{self.input_spec.dtype}, outputs={self.output_names}, "
            f"delegate={self.active_delegate!r}, "
            f"backend={self.backend.name!r})"
        )

    # -- running --------------------------------------------------------

    def __call__(self, x: npt.ArrayLike) -> Outputs:
        """Runs one input in model-input space -> {name: array}: float32,
        or the integers of an unquantized integer output (a segmenter's
        `classes`).

        `x` is (1, H, W, C) or (H, W, C) as `preprocess` returns it. Float
        values are quantized with the input tensor's own scale and zero
        point when the model takes int8/uint8.

        Raises:
            InputError: a shape, dtype or non-finite value the model
                cannot take.
        """
        ready = self._to_input(x)
        with self._lock:
            raw = self._engine.run(ready)
        out: Outputs = {}
        for (name, scale, zero_point), value in zip(
            self._dequantize, raw, strict=True
        ):
            if scale is None and np.issubdtype(value.dtype, np.integer):
                out[name] = value  # a class map: ids, not quantized values
            elif scale is None:
                out[name] = value.astype(np.float32, copy=False)
            else:
                out[name] = (value.astype(np.float32) - zero_point) * scale
        if self._host_classes:
            out[CLASSES] = class_map(
                out[LOGITS], self._classes_at, self.image_size
            )
        return out

    def _to_input(self, given: npt.ArrayLike) -> npt.NDArray[Any]:
        spec = self.input_spec
        x: npt.NDArray[Any] = np.asarray(given)
        if x.ndim == len(spec.shape) - 1:
            x = x[None]
        if x.shape != spec.shape:
            hint = ""
            if x.ndim == len(spec.shape) and x.shape[-1] != spec.shape[-1]:
                hint = (
                    f" ({x.shape[-1]} channels where the model takes "
                    f"{spec.shape[-1]})"
                )
            raise InputError(
                f"Input of shape {x.shape}{hint}; the model takes "
                f"{spec.shape} (or {spec.shape[1:]}). Use "
                "model.preprocess(image) to resize and normalize an image."
            )
        target = np.dtype(spec.dtype)
        if np.issubdtype(x.dtype, np.inexact):
            self._check_finite(x, target)
        if x.dtype == target:
            return x
        pixels_in_graph = bool(
            self.preprocessing and self.preprocessing["pixels_in_graph"]
        )
        if np.issubdtype(x.dtype, np.floating) or (
            x.dtype == np.uint8 and pixels_in_graph
        ):
            if spec.quantization is None:
                return x.astype(target)
            # in place on one float32 copy: this runs on every call
            q = x.astype(np.float32)
            q /= np.float32(spec.quantization["scale"])
            q += np.float32(spec.quantization["zero_point"])
            np.rint(q, out=q)
            info = np.iinfo(target)
            np.clip(q, info.min, info.max, out=q)
            return q.astype(target)
        raise InputError(
            f"Input dtype {x.dtype}; the model takes {spec.dtype}"
            + (" (normalized values)" if not pixels_in_graph else "")
            + ". Pass model.preprocess(image), or float32 values in the "
            "model's input space."
        )

    def _check_finite(self, x: npt.NDArray[Any], target: np.dtype[Any]) -> None:
        # one float64 sum is a cheap test; NaN and +-Inf survive it
        if np.isfinite(x.sum(dtype=np.float64)):
            return
        bad = ~np.isfinite(x)
        if not bad.any():  # finite values whose sum overflowed
            return
        if self.allow_nonfinite and np.issubdtype(target, np.floating):
            return
        counts = (
            f"{int(np.isnan(x).sum())} NaN, {int(np.isposinf(x).sum())} "
            f"+Inf, {int(np.isneginf(x).sum())} -Inf"
        )
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        if np.issubdtype(target, np.integer):
            fix = (
                f"the model takes {target.name}, which has no value for "
                "them (they would be cast to plausible pixels). Replace "
                "them (e.g. np.nan_to_num) or fix what produced them."
            )
        else:
            fix = (
                "they would spread through every feature. Replace them "
                "(e.g. np.nan_to_num), or pass allow_nonfinite=True to "
                "EdgeModel to run them anyway."
            )
        raise InputError(
            f"The input has non-finite values ({counts} of {x.size}; the "
            f"first at index {first}): {fix}"
        )

    def preprocess(
        self, image: ImageLike
    ) -> npt.NDArray[np.float32] | npt.NDArray[np.uint8]:
        """A path or an RGB array -> the (H, W, 3) array this model takes.

        Raises:
            InputError: an unreadable image.
            MetadataError: the model has no preprocessing metadata and
                none was passed to `EdgeModel`.
        """
        if self.preprocessing is None:
            raise MetadataError(
                f"{self.model_path!r} has no edge_backbones metadata, so its "
                "preprocessing is unknown. Pass preprocessing={'mean': ..., "
                "'std': ..., ...} to EdgeModel, or export the model with "
                "edge_backbones."
            )
        return preprocess(image, self.preprocessing, self.image_size)

    def predict(self, images: ImageLike | Iterable[ImageLike]) -> Outputs:
        """Preprocesses and runs images -> {name: stacked float32 array}.

        `images` is a list of paths or RGB arrays (a single one is fine);
        results are stacked along the batch axis in the same order.

        Raises:
            InputError: no images, or one the model cannot take.
            MetadataError: the model's preprocessing is unknown.
        """
        if isinstance(images, (str, os.PathLike)) or (
            isinstance(images, np.ndarray) and images.ndim in (2, 3)
        ):
            images = [images]
        if images is None or not hasattr(images, "__iter__"):
            raise InputError(
                f"predict() got {type(images).__name__}; pass a path, an "
                "RGB array, or a list of them."
            )
        inputs = [self.preprocess(image) for image in images]
        if not inputs:
            raise InputError(
                "predict() got no images; pass a list of paths or arrays."
            )
        return self.run_batch(inputs)

    def run_batch(self, inputs: Iterable[npt.ArrayLike]) -> Outputs:
        """Runs inputs already in model-input space, one at a time (the
        model takes batch 1) -> {name: outputs stacked along axis 0}.

        Each input is what `__call__` takes ((H, W, C) or (1, H, W, C));
        the order of the outputs is the order of the inputs.

        Raises:
            InputError: no inputs, or one the model cannot take.
        """
        results = [self(x) for x in inputs]
        if not results:
            raise InputError(
                "run_batch() got no inputs; pass (H, W, C) arrays as "
                "model.preprocess returns them."
            )
        return {
            name: np.concatenate([r[name] for r in results])
            for name in results[0]
        }
