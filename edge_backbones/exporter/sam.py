"""Exports Segment Anything's mask decoder beside its image encoder.

`export(...)` (the pipeline) exports a `SamModel` checkpoint's encoder
(image -> embeddings) in every mode as any ViTDet backbone, its metadata
tied to the checkpoint by `encoder_task`; then `export_decoders` writes
the decoder (`SAMBackbone.decoder_model`: embeddings + `max_points`
points and a box as two corners + mask input -> all masks + IoU) in each
of those modes the registry's `[sam_decoder.*]` tables list
(`core.modes.sam_decoder_plans`), calibrated on the embeddings of the
calibration photos with a fixed, generated prompt set. Each decoder is
verified on the held-out photos' embeddings x the same kind of prompts by
mask IoU against the float Keras model (logits binarized at 0) and by
IoU-prediction error; the gates and the measured numbers go into its
metadata. Both artifacts carry a `task` object (kind, checkpoint digest,
input size, embedding shape) that `runtime.SamPredictor` checks before
pairing them.
"""

import contextlib
import hashlib
import json
import os
import time
from typing import Any

import numpy as np

from edge_backbones.errors import ExportError, FidelityError, require

__all__ = [
    "checkpoint_digest",
    "encoder_task",
    "export_decoders",
    "is_sam_checkpoint",
    "prompt_set",
    "verify_decoder",
]

DECODER = "decoder"
DECODER_KIND = "sam_decoder"


def is_sam_checkpoint(model: Any) -> bool:
    """Whether `model` (a name or folder) is a whole Segment Anything
    model: a SAM preset, or a folder of a `SamModel` checkpoint (its
    config.json's model_type "sam"; a vision encoder alone is not)."""
    from edge_backbones.models.sam.sam_presets import sam_presets

    if not isinstance(model, (str, os.PathLike)):
        return False
    path = os.fspath(model)
    if not os.path.isdir(path):
        return path in sam_presets
    try:
        with open(os.path.join(path, "config.json")) as f:
            config = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and config.get("model_type") == "sam"


def checkpoint_digest(model: Any) -> str:
    """sha256 of the checkpoint's weight files (what ties a pair); for a
    preset name, of the name."""
    digest = hashlib.sha256()
    path = os.fspath(model)
    if not os.path.isdir(path):
        digest.update(f"preset: {path}".encode())
        return digest.hexdigest()
    names = sorted(n for n in os.listdir(path) if n.endswith(".safetensors"))
    for name in names:
        with open(os.path.join(path, name), "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _embedding_shape(backbone, size):
    level = backbone.feature_info[0]
    return [size[0] // level.stride, size[1] // level.stride, level.channels]


def encoder_task(model: Any, size: Any, backbone: Any) -> dict[str, Any]:
    """The encoder artifact's `task` block (kind, checkpoint digest, image
    size, embedding shape): what its decoder must match."""
    return {
        "kind": "sam_encoder",
        "checkpoint_sha256": checkpoint_digest(model),
        "image_size": [int(size[0]), int(size[1])],
        "embedding_shape": _embedding_shape(backbone, size),
    }


def prompt_set(
    input_size: Any, max_points: Any, count: Any, seed: Any = 0
) -> Any:
    """`count` fixed prompts in the encoder's frame, as decoder arrays.

    Deterministic (seeded): one foreground point, two points (one
    background), a box, and a box with a point, in turn, placed inside
    the central 80 % of the frame. Returns (coords (count, P, 2), labels
    (count, P)) with P = max_points + 2 slots.
    """
    rng = np.random.default_rng(seed)
    height, width = input_size
    slots = max_points + 2
    coords = np.zeros((count, slots, 2), np.float32)
    labels = np.full((count, slots), -1.0, np.float32)

    def point():
        return rng.uniform(0.1, 0.9, 2) * (width, height)

    for i in range(count):
        kind = i % 4
        n = 0
        if kind in (0, 3):
            coords[i, 0], labels[i, 0], n = point(), 1, 1
        elif kind == 1 and max_points >= 2:
            coords[i, :2] = point(), point()
            labels[i, :2], n = (1, 0), 2
        else:
            coords[i, 0], labels[i, 0], n = point(), 1, 1
        if kind in (2, 3):
            a, b = point(), point()
            coords[i, n] = np.minimum(a, b)
            coords[i, n + 1] = np.maximum(a, b)
            labels[i, n : n + 2] = (2, 3)
    return coords, labels


def _decoder_feed(embeddings, coords, labels, h, w):
    return {
        "image_embeddings": embeddings.astype(np.float32),
        "point_coords": coords[None].astype(np.float32),
        "point_labels": labels[None].astype(np.float32),
        "mask_input": np.zeros((1, 4 * h, 4 * w, 1), np.float32),
        "has_mask_input": np.zeros((1, 1), np.float32),
    }


def _with_mask_input(feed, outputs):
    """`feed` again with its best multimask output's low-resolution logits
    as `mask_input`, as SamPredictor users refine a mask."""
    best = 1 + int(np.argmax(np.asarray(outputs["iou_predictions"])[0, 1:]))
    masks = np.asarray(outputs["masks"], np.float32)
    return {
        **feed,
        "mask_input": masks[..., best : best + 1],
        "has_mask_input": np.ones((1, 1), np.float32),
    }


def _write_decoder_saved_model(decoder, path):
    keras = require("keras", "export")
    tf = require("tensorflow", "export")
    from edge_backbones.atomic_io import staged_directory

    names = [t.name for t in decoder.inputs]
    specs = [
        tf.TensorSpec(t.shape, "float32", name=t.name) for t in decoder.inputs
    ]

    def serve(*args):
        return decoder(dict(zip(names, args, strict=True)))

    archive = keras.export.ExportArchive()
    archive.track(decoder)
    archive.add_endpoint("serving_default", serve, input_signature=specs)
    with staged_directory(path) as staging:
        archive.write_out(staging, verbose=False)
    return path


def _decoder_task(sam, digest, size, max_points):
    h, w, c = sam.embedding_shape
    return {
        "kind": DECODER_KIND,
        "checkpoint_sha256": digest,
        "image_size": [int(size[0]), int(size[1])],
        "embedding_shape": [h, w, c],
        "max_points": max_points,
        "num_point_slots": max_points + 2,
        "mask_input_size": [4 * h, 4 * w],
        "num_multimask_outputs": sam.mask_decoder.num_multimask_outputs,
    }


def _spec(shape, dtype="float32", quantization=None):
    return {"shape": list(shape), "dtype": dtype, "quantization": quantization}


def _decoder_io(content):
    """`input` (the image embeddings, as every artifact has one),
    `outputs`, and every input for the task's `inputs`, as the converted
    graph has them (integer with a scale in the npu target)."""
    from edge_backbones.runtime.backends import load_backend

    interpreter = load_backend(None).Interpreter(model_content=content)
    runner = interpreter.get_signature_runner("serving_default")

    def spec(details):
        scale, zero = (details.get("quantization") or (0.0, 0))[:2]
        return _spec(
            details["shape"].tolist(),
            np.dtype(details["dtype"]).name,
            {"scale": float(scale), "zero_point": int(zero)} if scale else None,
        )

    inputs = {
        name: {"name": name, **spec(details)}
        for name, details in runner.get_input_details().items()
    }
    outputs = {
        name: {
            **spec(details),
            "stride": None,
            "channels": int(details["shape"][-1]),
        }
        for name, details in runner.get_output_details().items()
    }
    return (
        {**inputs["image_embeddings"], "preprocessing": {}},
        outputs,
        inputs,
    )


def _run_decoder(path, feeds):
    from edge_backbones.runtime.sam_predictor import SignatureModel

    decoder = SignatureModel(path)
    return [decoder(**feed) for feed in feeds]


def verify_decoder(
    path: str, reference: list[dict[str, Any]], feeds: list[dict[str, Any]]
) -> dict[str, Any]:
    """Mask IoU and IoU-prediction error of the decoder at `path` against
    `reference` (the float Keras outputs of the same `feeds`), over every
    mask, run as `SamPredictor` runs it."""
    from edge_backbones.core.fidelity import compare
    from edge_backbones.core.mask_metrics import mask_iou, mask_iou_summary

    ious, errors = [], []
    by_kind: dict[str, list[float]] = {"no_mask_input": [], "mask_input": []}
    outputs = _run_decoder(path, feeds)
    for got, expected, feed in zip(outputs, reference, feeds, strict=True):
        masks = np.moveaxis(got["masks"][0], -1, 0) > 0
        want = np.moveaxis(expected["masks"][0], -1, 0) > 0
        ious.extend(mask_iou(masks, want).tolist())
        kind = "mask_input" if feed["has_mask_input"].any() else "no_mask_input"
        by_kind[kind].extend(ious[-len(masks) :])
        errors.append(
            float(
                np.abs(
                    got["iou_predictions"] - expected["iou_predictions"]
                ).max()
            )
        )
    stacked = {
        key: np.concatenate([o[key] for o in outputs]) for key in reference[0]
    }
    wanted = {
        key: np.concatenate([r[key] for r in reference]) for key in reference[0]
    }
    return {
        "figures": compare(wanted, stacked),
        "mask_iou": mask_iou_summary(ious),
        "mask_iou_by_prompt": {
            kind: mask_iou_summary(values)
            for kind, values in by_kind.items()
            if values
        },
        "iou_prediction_max_error": max(errors),
        "prompts": len(feeds),
    }


def _failed_gates(decoder_plan, measured):
    failed = []
    iou = measured["mask_iou"]
    if iou["mean"] < decoder_plan.min_mean_mask_iou:
        failed.append(f"mean mask IoU {iou['mean']:.4f}")
    if iou["worst"] < decoder_plan.min_worst_mask_iou:
        failed.append(f"worst mask IoU {iou['worst']:.4f}")
    error = measured["iou_prediction_max_error"]
    if error > decoder_plan.max_iou_prediction_error:
        failed.append(f"IoU-prediction error {error:.4g}")
    return failed


class _Converters:
    """The decoder's Converter per graph form: the plain trace, and the
    integer forms (`models.layers.integer_layer_norm`) full int8 asks for,
    or the polynomial sines (`models.layers.polynomial_sin`) int16x8 needs
    (its quantizer has no SIN), traced on first use."""

    def __init__(self, decoder, max_sin_argument, work, representative, log):
        self.decoder, self.work = decoder, work
        self.max_sin_argument = max_sin_argument
        self.representative, self.log = representative, log
        self.forms = {}

    def for_plan(self, plan):
        from edge_backbones.exporter.convert import Converter
        from edge_backbones.models.layers import (
            integer_layer_norm,
            integer_softmax,
            polynomial_sin,
        )

        form = (
            plan.integer_layer_norm,
            plan.integer_softmax,
            plan.converter == "int16x8",
        )
        if form not in self.forms:
            folder = "decoder" + "".join(
                suffix
                for suffix, on in zip(
                    ("_ln", "_softmax", "_polysin"), form, strict=True
                )
                if on
            )
            with (
                integer_layer_norm() if form[0] else contextlib.nullcontext(),
                integer_softmax() if form[1] else contextlib.nullcontext(),
                polynomial_sin(self.max_sin_argument)
                if form[2]
                else contextlib.nullcontext(),
            ):
                saved = _write_decoder_saved_model(
                    self.decoder, os.path.join(self.work, folder)
                )
            self.forms[form] = Converter(
                saved, self.representative, log=self.log
            )
        return self.forms[form]


def _convert(converters, decoder, decoder_plan):
    """(.tflite bytes, the nodes kept float by layer type and name (with
    the float outputs' nodes))."""
    from edge_backbones.exporter.quant_debug import (
        output_nodes,
        scheme_float_nodes,
    )

    plan = decoder_plan.plan
    converter = converters.for_plan(plan)
    if plan.converter in ("fp32", "fp16"):
        return getattr(converter, plan.converter)(), ([], [])
    if plan.converter == "dynamic":
        return converter.dynamic(plan.float_weight_ops), ([], [])
    if plan.converter == "int16x8":
        content = converter.int16x8(
            integer_io=plan.integer_io,
            grouped_depthwise=plan.grouped_depthwise,
        )
        return content, ([], [])
    float32 = converter.fp32()
    types, names = scheme_float_nodes(float32, decoder, plan)
    names = [*names, *output_nodes(float32, decoder_plan.float_outputs)]
    content = converter.int8(
        io_dtype="int8" if plan.integer_io else "float32",
        float_ops=plan.float_ops,
        float_nodes=[*types, *names],
        ranges=plan.ranges,
    )
    return content, (types, names)


def _metadata(plan, content, measured, task, model, paths):
    import platform

    from edge_backbones.exporter import tflite_metadata
    from edge_backbones.runtime.backends import load_backend

    backend = load_backend(None)
    first, outputs, inputs = _decoder_io(content)
    type_nodes, name_nodes = paths
    return {
        "schema": tflite_metadata.SCHEMA,
        "model": model,
        "mode": plan.plan.mode,
        "recipe": plan.plan.target,
        **({"recipe_reason": plan.plan.reason} if plan.plan.reason else {}),
        "scheme": {
            **plan.plan.as_metadata(),
            "float_layers": {"requested": [], "matched_nodes": []},
            "float_layer_type_nodes": list(type_nodes),
            "float_layer_name_nodes": list(name_nodes),
        },
        "input": first,
        "outputs": outputs,
        "fidelity": {
            **measured.pop("figures"),
            "min_cosine": 0.0,
            "holdout": "held-out photos' embeddings x the fixed prompt set",
        },
        "verified_on": {
            "arch": platform.machine(),
            "emulated": None,
            "runtime": f"{backend.name} {backend.version}",
            "delegate": "xnnpack",
        },
        "graph": tflite_metadata.graph_summary(content),
        "task": {
            **task,
            "inputs": inputs,
            "prompt_verification": {**measured, "gate": plan.gate()},
        },
        "versions": tflite_metadata.versions(),
        "created": tflite_metadata.utc_now(),
    }


def export_decoders(
    model: Any,
    sam: Any,
    modes: Any,
    stem: Any,
    out: str,
    work: str,
    calibration_embeddings: list[Any],
    holdout_embeddings: list[Any],
    model_info: dict[str, Any],
    max_points: int = 4,
    prompts_per_image: int = 8,
    mask_prompts: bool = True,
    log: Any = print,
) -> tuple[list[dict[str, Any]], list[tuple[str, ExportError]]]:
    """Writes `<stem(mode)>.tflite` + `.json`, SAM's decoder, in each of
    `modes` the registry gives it (the others are logged and skipped).

    `sam` is the checkpoint's `SAMBackbone`; the embeddings (1, h, w, C)
    come from its float encoder on the calibration and held-out photos.
    `mask_prompts`: calibrate on each prompt twice, the second time with
    the float decoder's mask as `mask_input` (verification always has
    both: each held-out prompt, then again refining its own mask).
    Returns (one dict per written artifact: mode, path, size_bytes,
    seconds, metadata; [(mode, error)] of the decoders that failed to
    convert (ExportError) or fell outside their gates (FidelityError),
    which are not written).
    """
    from edge_backbones.core import modes as modes_lib
    from edge_backbones.exporter import tflite_metadata

    known = modes_lib.registry().sam_decoder
    skipped = [m for m in modes if m not in known]
    if skipped:
        log(
            f"sam decoder: not exported in {skipped} (its modes: {list(known)})"
        )
    plans = modes_lib.sam_decoder_plans([m for m in modes if m in known])
    height, width = sam.image_encoder.image_shape[:2]
    h, w, _ = sam.embedding_shape
    digest = checkpoint_digest(model)
    task = _decoder_task(sam, digest, (height, width), max_points)
    coords, labels = prompt_set((height, width), max_points, prompts_per_image)
    held_coords, held_labels = prompt_set(
        (height, width), max_points, prompts_per_image, seed=1
    )
    decoder = sam.decoder_model(max_points + 2)
    calibration = [
        _decoder_feed(e, c, lab, h, w)
        for e in calibration_embeddings or holdout_embeddings
        for c, lab in zip(coords, labels, strict=True)
    ]
    if mask_prompts and any(p.plan.needs_calibration for p in plans.values()):
        # each prompt again with the float decoder's mask as mask_input:
        # the mask path calibrated on real low-resolution logits, not on
        # zeros only
        calibration += [
            _with_mask_input(feed, decoder(feed)) for feed in calibration
        ]

    def representative():
        yield from calibration

    converters = _Converters(
        decoder,
        sam.prompt_encoder.max_sin_argument(),
        work,
        representative,
        log,
    )
    feeds = [
        _decoder_feed(e, c, lab, h, w)
        for e in holdout_embeddings
        for c, lab in zip(held_coords, held_labels, strict=True)
    ]
    reference = [
        {k: np.asarray(v) for k, v in decoder(feed).items()} for feed in feeds
    ]
    # and each prompt refining its own mask, as SamPredictor users do
    refined = [
        _with_mask_input(feed, out)
        for feed, out in zip(feeds, reference, strict=True)
    ]
    feeds += refined
    reference += [
        {k: np.asarray(v) for k, v in decoder(feed).items()} for feed in refined
    ]
    written, failures = [], []
    for mode, plan in plans.items():
        started = time.perf_counter()
        log(f"decoder {mode}: converting ({plan.plan.description})")
        try:
            content, float_nodes = _convert(converters, decoder, plan)
        except ExportError as exc:  # the other modes still go on
            log(f"decoder {mode}: FAILED: {exc}")
            failures.append((mode, exc))
            continue
        candidate = os.path.join(work, f"decoder_candidate_{mode}.tflite")
        with open(candidate, "wb") as f:
            f.write(content)
        measured = verify_decoder(candidate, reference, feeds)
        os.unlink(candidate)
        iou = measured["mask_iou"]
        kinds = "; ".join(
            f"{kind} {k['mean']:.4f} / {k['worst']:.4f}"
            for kind, k in measured["mask_iou_by_prompt"].items()
        )
        log(
            f"decoder {mode}: mask IoU mean {iou['mean']:.4f}, worst "
            f"{iou['worst']:.4f} ({kinds}); IoU-prediction error "
            f"{measured['iou_prediction_max_error']:.3g} on "
            f"{len(feeds)} prompts"
        )
        failed = _failed_gates(plan, measured)
        if failed:
            failures.append(
                (
                    mode,
                    FidelityError(
                        f"SAM decoder {mode}: {', '.join(failed)} outside "
                        f"its gate {plan.gate()}; not written. Try fp32 or "
                        "fp16, or keep more of its layers float in the "
                        "registry's [sam_decoder] table."
                    ),
                )
            )
            log(f"decoder {mode}: rejected ({', '.join(failed)})")
            continue
        metadata = _metadata(
            plan, content, measured, task, model_info, float_nodes
        )
        path = os.path.join(out, stem(mode) + ".tflite")
        size = tflite_metadata.write_artifact(path, content, metadata, work)
        written.append(
            {
                "mode": mode,
                "path": path,
                "size_bytes": size,
                "seconds": time.perf_counter() - started,
                "metadata": metadata,
            }
        )
    return written, failures


def load_sam(
    model: Any,
    size: Any,
    random_weights: bool,
    config: dict[str, Any] | None = None,
) -> Any:
    """The checkpoint's `SAMBackbone` at `size` (its prompt encoder's
    grid follows the encoder's); `config` overrides the image encoder's
    architecture, as for the exported encoder."""
    from edge_backbones.models.sam import SAMBackbone

    return SAMBackbone.from_preset(
        os.fspath(model),
        load_weights=not random_weights,
        **{
            **(config or {}),
            "image_shape": (int(size[0]), int(size[1]), 3),
        },
    )
