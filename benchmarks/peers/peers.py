"""The tools compared, each a `Peer` that converts the one checkpoint.

A peer's `build(context)` returns {mode: path of its .tflite, or the
exception that mode died of}; a peer that raises (not installed, fails
to convert) fails every one of its modes. Either way every mode becomes a
row, with its error when it has one: a peer is never a silent gap.
"""

import dataclasses
import os

from edge_backbones.errors import require

__all__ = [
    "AEQ",
    "LITERT_TORCH",
    "OURS",
    "PEERS",
    "Context",
    "Peer",
    "build_all",
    "export_ours",
    "our_modes",
    "peers_for",
]

OURS = "edge_backbones"
LITERT_TORCH = "litert-torch"
AEQ = "ai-edge-quantizer"
# our modes and device targets, in the table's order
OUR_MODES = ("fp32", "dynamic", "int8", "int8_mixed")
OUR_TARGETS = ("cpu", "npu", "npu_int8")
# the segmenter: fp32, the baseline every tool's conversion is timed
# against (its int8 modes and NPU targets: benchmarks/segmentation, one
# 512x512 export per mode being long)
OUR_SEGMENTER_MODES = ("fp32",)
OUR_SEGMENTER_TARGETS = ()
# no gate: every artifact is measured and reported, whatever its fidelity
# against Keras (the benchmark compares with PyTorch itself)
_NO_GATE = 1e-6
OUR_NAME = "segformer_b0"


@dataclasses.dataclass
class Context:
    """What every peer converts from, and where it writes."""

    folder: str  # the Hugging Face checkpoint
    size: tuple  # (height, width)
    calibration: object  # folder or CalibrationSet, for our export
    inputs: object  # checkpoint.Inputs: the same arrays for every tool
    work: str  # artifacts go to <work>/<tool>/
    threads: int = 2
    task: str = "backbone"  # or "segmentation": the checkpoint's head
    built: dict = dataclasses.field(default_factory=dict)  # (tool, mode)->

    def path(self, tool, mode):
        folder = os.path.join(self.work, tool.replace(" ", "_"))
        os.makedirs(folder, exist_ok=True)
        return os.path.join(folder, f"{mode}.tflite")


@dataclasses.dataclass(frozen=True)
class Peer:
    """One tool (or tool chain) and the modes it makes."""

    tool: str
    modes: tuple
    build: object  # (Context) -> {mode: path or Exception}
    # (tool, mode) whose artifact this peer starts from
    source: tuple | None = None


def our_modes(task):
    """(modes, targets) our export makes for the checkpoint's task."""
    from benchmarks.peers.checkpoint import SEGMENTATION

    if task == SEGMENTATION:
        return OUR_SEGMENTER_MODES, OUR_SEGMENTER_TARGETS
    return OUR_MODES, OUR_TARGETS


def export_ours(context, modes, targets):
    """{mode: path} of `edge_backbones.export()` of the checkpoint folder
    (a segmentation checkpoint exports the segmenter: logits, classes)."""
    from edge_backbones import export

    every = (*modes, *targets)
    records = export(
        context.folder,
        image_size=context.size,
        modes=modes,
        targets=targets,
        calibration=context.calibration,
        out=os.path.join(context.work, OURS),
        thresholds=dict.fromkeys(every, _NO_GATE),
        mask_thresholds=dict.fromkeys(every, _NO_GATE),
        num_threads=context.threads,
        name=OUR_NAME,
    )
    return {record.mode: record.path for record in records}


def build_ours(context):
    """edge_backbones.export() of the folder; a mode that fails alone is
    exported again alone, so its error is its own."""
    modes, targets = our_modes(context.task)
    try:
        return export_ours(context, modes, targets)
    except Exception:  # noqa: BLE001 - each mode below gets its own error
        pass
    from edge_backbones.exporter.recipes import artifact_stem

    built = {}
    folder = os.path.join(context.work, OURS)
    for mode in (*modes, *targets):
        stem = artifact_stem(OUR_NAME, context.size, mode)
        done = os.path.join(folder, stem + ".tflite")
        if os.path.exists(done):  # written before another mode failed
            built[mode] = done
            continue
        is_target = mode in targets
        try:
            built.update(
                export_ours(
                    context,
                    () if is_target else (mode,),
                    (mode,) if is_target else (),
                )
            )
        except Exception as exc:  # noqa: BLE001 - the row shows it
            built[mode] = exc
    return built


def _litert_convert(context, module, quantizer=None):
    torch = require("torch", "bench")
    litert_torch = require("litert_torch", "bench")
    sample = (torch.from_numpy(context.inputs.calibration[0][None]),)
    config = None
    if quantizer is not None:
        from litert_torch.quantize.quant_config import QuantConfig

        config = QuantConfig(pt2e_quantizer=quantizer)
    return litert_torch.convert(module, sample, quant_config=config)


def build_litert_fp32(context):
    from benchmarks.peers.checkpoint import torch_module

    path = context.path(LITERT_TORCH, "fp32")
    model = _litert_convert(context, torch_module(context.folder, context.task))
    model.export(path)
    return {"fp32": path}


def _pt2e(context, dynamic):
    """PT2E: torch.export, observers, calibration, convert, litert-torch."""
    torch = require("torch", "bench")
    require("litert_torch", "bench")
    from litert_torch.quantize import pt2e_quantizer
    from torchao.quantization.pt2e import quantize_pt2e

    from benchmarks.peers.checkpoint import torch_module

    quantizer = pt2e_quantizer.PT2EQuantizer().set_global(
        pt2e_quantizer.get_symmetric_quantization_config(
            is_per_channel=True, is_dynamic=dynamic
        )
    )
    images = [torch.from_numpy(x[None]) for x in context.inputs.calibration]
    exported = torch.export.export(
        torch_module(context.folder, context.task), tuple(images[:1])
    )
    prepared = quantize_pt2e.prepare_pt2e(exported.module(), quantizer)
    # dynamic ranges are taken per run: one pass only sets up the graph
    with torch.no_grad():
        for image in images[:1] if dynamic else images:
            prepared(image)
    converted = quantize_pt2e.convert_pt2e(prepared, fold_quantize=False)
    return _litert_convert(context, converted, quantizer)


def build_pt2e_static(context):
    path = context.path(LITERT_TORCH, "pt2e_static_int8")
    _pt2e(context, dynamic=False).export(path)
    return {"pt2e_static_int8": path}


def build_pt2e_dynamic(context):
    path = context.path(LITERT_TORCH, "pt2e_dynamic_int8")
    _pt2e(context, dynamic=True).export(path)
    return {"pt2e_dynamic_int8": path}


def _signature(path):
    """(signature key, input name) of a .tflite's one signature."""
    from edge_backbones.runtime.backends import load_backend

    interpreter = load_backend().Interpreter(model_path=path)
    signatures = interpreter.get_signature_list()
    key = next(iter(signatures))
    return key, signatures[key]["inputs"][0]


def _aeq(context, tool, source):
    """ai-edge-quantizer's two public recipes on the artifact `source`."""
    require("ai_edge_quantizer", "bench")
    from ai_edge_quantizer import quantizer, recipe

    from_path = context.built.get(source)
    if not isinstance(from_path, str):
        raise RuntimeError(
            f"needs the {source[0]} {source[1]} artifact, which failed: "
            f"{from_path}"
        )
    key, input_name = _signature(from_path)
    built = {}
    for mode, make in (
        ("static_wi8_ai8", recipe.static_wi8_ai8),
        ("dynamic_wi8_afp32", recipe.dynamic_wi8_afp32),
    ):
        try:
            built[mode] = _aeq_one(
                context, quantizer, make(), key, input_name, from_path,
                context.path(tool, mode), calibrated=mode.startswith("st"),
            )  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - the row shows it
            built[mode] = exc
    return built


def _without_our_metadata(path):
    """The model's bytes without our embedded metadata.

    Quantizing our artifact elsewhere makes another model: it must not
    carry our metadata (fidelity, recipe, the content sha256 the runtime
    checks, which the edit would break anyway).
    """
    require("tensorflow", "export")
    from tensorflow.lite.tools import flatbuffer_utils

    from edge_backbones.exporter.tflite_metadata import METADATA_NAME

    with open(path, "rb") as f:
        model = flatbuffer_utils.convert_bytearray_to_object(f.read())
    model.metadata = [
        entry
        for entry in model.metadata or []
        if entry.name not in (METADATA_NAME, METADATA_NAME.encode())
    ]
    return flatbuffer_utils.convert_object_to_bytearray(model)


def _aeq_one(
    context, quantizer, recipe, key, input_name, from_path, path, calibrated
):
    engine = quantizer.Quantizer(_without_our_metadata(from_path))
    engine.load_quantization_recipe(recipe)
    calibration = None
    if calibrated:
        samples = [{input_name: x[None]} for x in context.inputs.calibration]
        calibration = engine.calibrate({key: samples})
    result = engine.quantize(calibration, enable_progress_bar=False)
    result.export_model(path, overwrite=True)
    return path


AEQ_MODES = ("static_wi8_ai8", "dynamic_wi8_afp32")


def _ours(task="backbone"):
    modes, targets = our_modes(task)
    return Peer(OURS, (*modes[:1], *targets, *modes[1:]), build_ours)


PEERS = (
    _ours(),
    Peer(LITERT_TORCH, ("fp32",), build_litert_fp32),
    Peer(LITERT_TORCH, ("pt2e_static_int8",), build_pt2e_static),
    Peer(LITERT_TORCH, ("pt2e_dynamic_int8",), build_pt2e_dynamic),
    Peer(
        f"{LITERT_TORCH} → {AEQ}",
        AEQ_MODES,
        lambda c: _aeq(c, f"{LITERT_TORCH}_{AEQ}", (LITERT_TORCH, "fp32")),
        source=(LITERT_TORCH, "fp32"),
    ),
    Peer(
        f"{OURS} → {AEQ}",
        AEQ_MODES,
        lambda c: _aeq(c, f"{OURS}_{AEQ}", (OURS, "fp32")),
        source=(OURS, "fp32"),
    ),
)


def peers_for(task, tools=None):
    """PEERS, with our modes for the checkpoint's task; `tools` (a comma
    list of tool names, default all): the peers whose tool chain ends in
    one of them."""
    chosen = (_ours(task), *PEERS[1:])
    if not tools:
        return chosen
    names = [name.strip() for name in tools.split(",") if name.strip()]
    known = {OURS, LITERT_TORCH, AEQ}
    unknown = sorted(set(names) - known)
    if unknown:
        from edge_backbones.errors import InputError

        raise InputError(
            f"--tools {unknown}: no such tool; give some of {sorted(known)}."
        )
    return tuple(peer for peer in chosen if peer.tool.split(" → ")[-1] in names)


def build_all(context, peers=PEERS, log=print):
    """[(peer, mode, path or Exception)] in table order; fills `built`."""
    results = []
    for peer in peers:
        log(f"peers: converting with {peer.tool} ({', '.join(peer.modes)})")
        try:
            built = peer.build(context)
        except Exception as exc:  # noqa: BLE001 - every mode gets a row
            built = dict.fromkeys(peer.modes, exc)
        for mode in peer.modes:
            value = built.get(mode)
            if value is None:
                value = RuntimeError(f"{peer.tool} made no {mode} artifact")
            context.built[(peer.tool, mode)] = value
            results.append((peer, mode, value))
    return results
