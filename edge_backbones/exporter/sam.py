"""Exports Segment Anything as two artifacts: encoder and mask decoder.

The encoder (image -> embeddings) is exported as any ViTDet backbone; the
decoder (`SAMBackbone.decoder_model`: embeddings + `max_points` points and
a box as two corners + mask input -> all masks + IoU) in the modes of
`sam_modes.toml`, calibrated on the embeddings of the calibration photos
with a fixed, generated prompt set. Each decoder is verified on held-out
photos x the same kind of prompts by mask IoU against the float Keras
model (logits binarized at 0) and by IoU-prediction error; the gates and
the measured numbers go into its metadata. Both artifacts carry a `task`
object (kind, checkpoint digest, input size, embedding shape) that
`runtime.SamPredictor` checks before pairing them.
"""

import hashlib
import os
import sys
from typing import Any

import numpy as np
import tomllib

from edge_backbones.errors import ExportError, FidelityError, require

__all__ = [
    "SAM_DECODER_MODES",
    "checkpoint_digest",
    "export_sam",
    "prompt_set",
]

with open(os.path.join(os.path.dirname(__file__), "sam_modes.toml"), "rb") as f:
    SAM_DECODER_MODES = tomllib.load(f)
SCHEMA = "edge_backbones.tflite/1"


def checkpoint_digest(folder: Any) -> Any:
    """sha256 of the checkpoint's weight files (what ties a pair)."""
    digest = hashlib.sha256()
    names = sorted(n for n in os.listdir(folder) if n.endswith(".safetensors"))
    for name in names:
        with open(os.path.join(folder, name), "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


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


def _task(sam, digest, kind, max_points=None):
    h, w, c = sam.embedding_shape
    task = {
        "kind": kind,
        "checkpoint_sha256": digest,
        "image_size": list(sam.image_encoder.image_shape[:2]),
        "embedding_shape": [h, w, c],
    }
    if max_points is not None:
        task.update(
            max_points=max_points,
            num_point_slots=max_points + 2,
            mask_input_size=[4 * h, 4 * w],
            num_multimask_outputs=sam.mask_decoder.num_multimask_outputs,
        )
    return task


def _spec(shape, dtype="float32"):
    return {"shape": list(shape), "dtype": dtype, "quantization": None}


def _model_info(sam, name):
    return {
        "name": name,
        "class_name": "SAMBackbone",
        "config": {},
        "weights": "huggingface",
        "params": int(sam.count_params()),
    }


def _common(content, mode, figures, gate):
    """The keys every artifact records, for a SAM part in `mode`."""
    import platform

    from edge_backbones.core.modes import mode_plans
    from edge_backbones.exporter import tflite_metadata
    from edge_backbones.runtime.backends import load_backend

    backend = load_backend(None)
    scheme = mode_plans().get(mode) or mode_plans()["fp32"]
    return {
        "schema": SCHEMA,
        "mode": mode,
        "recipe": None,
        "scheme": {
            **scheme.as_metadata(),
            "float_layers": {"requested": [], "matched_nodes": []},
            "float_layer_type_nodes": [],
            "float_layer_name_nodes": [],
        },
        "fidelity": {**figures, "min_cosine": gate, "holdout": "held-out"},
        "verified_on": {
            "arch": platform.machine(),
            "emulated": None,
            "runtime": f"{backend.name} {backend.version}",
            "delegate": "xnnpack",
        },
        "graph": tflite_metadata.graph_summary(content),
        "versions": tflite_metadata.versions(),
        "created": tflite_metadata.utc_now(),
    }


def _encoder_metadata(sam, name, digest, content, figures):
    encoder = sam.image_encoder
    height, width, _ = encoder.image_shape
    h, w, c = sam.embedding_shape
    level = encoder.feature_info[0]
    return {
        **_common(content, "fp32", figures, 0.9999),
        "model": _model_info(sam, name),
        "input": {
            "name": "images",
            **_spec((1, height, width, 3)),
            "preprocessing": encoder.preprocessing,
        },
        "outputs": {
            level.name: {
                **_spec((1, h, w, c)),
                "stride": level.stride,
                "channels": level.channels,
            }
        },
        "task": _task(sam, digest, "sam_encoder"),
    }


def _decoder_io(decoder):
    """`input` (the image embeddings, as every artifact has one) and
    `outputs`; every input is listed in the task's `inputs`. Float32 I/O
    in every mode."""
    inputs = {
        t.name: {"name": t.name, **_spec(t.shape)} for t in decoder.inputs
    }
    outputs = {
        name: {**_spec(t.shape), "stride": None, "channels": t.shape[-1]}
        for name, t in decoder.output.items()
    }
    return (
        {**inputs["image_embeddings"], "preprocessing": {}},
        outputs,
        inputs,
    )


def _encoder_figures(content, photos, embeddings, sam):
    """The fp32 encoder's cosine figures against Keras on `photos`."""
    from edge_backbones.core.fidelity import compare
    from edge_backbones.runtime.backends import load_backend

    interpreter = load_backend(None).Interpreter(model_content=content)
    runner = interpreter.get_signature_runner("serving_default")
    level = sam.image_encoder.feature_info[0].name
    got = [runner(images=p[None].astype(np.float32))[level] for p in photos]
    return compare(
        {level: np.concatenate(embeddings)}, {level: np.concatenate(got)}
    )


def _convert_decoder(converter, mode):
    spec = SAM_DECODER_MODES[mode]
    method = spec["converter"]
    if method == "int8":
        return converter.int8(float_ops=tuple(spec.get("float_ops", ())))
    return getattr(converter, method)()


def _run_decoder(content, feed):
    from edge_backbones.runtime.backends import load_backend

    interpreter = load_backend(None).Interpreter(model_content=content)
    runner = interpreter.get_signature_runner("serving_default")
    return runner(**feed)


def verify_decoder(content, reference, feeds):
    """Mask IoU and IoU-prediction error of a decoder against `reference`
    (the float Keras outputs of the same `feeds`), over every mask."""
    from edge_backbones.core.fidelity import compare
    from edge_backbones.core.mask_metrics import mask_iou, mask_iou_summary

    ious, errors, outputs = [], [], []
    for feed, expected in zip(feeds, reference, strict=True):
        got = _run_decoder(content, feed)
        outputs.append(got)
        masks = np.moveaxis(got["masks"][0], -1, 0) > 0
        want = np.moveaxis(expected["masks"][0], -1, 0) > 0
        ious.extend(mask_iou(masks, want).tolist())
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
        "iou_prediction_max_error": max(errors),
        "prompts": len(feeds),
    }


def _gate(mode, measured):
    spec = SAM_DECODER_MODES[mode]
    gate = {
        key: spec[key]
        for key in (
            "min_mean_iou",
            "min_worst_iou",
            "max_iou_prediction_error",
        )
    }
    failed = []
    if measured["mask_iou"]["mean"] < gate["min_mean_iou"]:
        failed.append(f"mean mask IoU {measured['mask_iou']['mean']:.4f}")
    if measured["mask_iou"]["worst"] < gate["min_worst_iou"]:
        failed.append(f"worst mask IoU {measured['mask_iou']['worst']:.4f}")
    if measured["iou_prediction_max_error"] > gate["max_iou_prediction_error"]:
        failed.append(
            f"IoU-prediction error {measured['iou_prediction_max_error']:.4g}"
        )
    return gate, failed


def _photos(calibration, size, preprocessing):
    from edge_backbones.runtime.preprocess import preprocess

    names = sorted(
        n
        for n in os.listdir(calibration)
        if n.lower().endswith((".jpg", ".jpeg", ".png"))
    )
    if len(names) < 2:
        from edge_backbones.errors import CalibrationError

        raise CalibrationError(
            f"{calibration!r} holds {len(names)} photos; the SAM decoder "
            "export needs at least 2 (calibration + held-out)."
        )
    return [
        preprocess(os.path.join(calibration, n), preprocessing, size)
        for n in names
    ]


def export_sam(
    checkpoint: Any,
    out: Any,
    modes: Any = ("fp32",),
    max_points: Any = 4,
    calibration: Any = None,
    prompts_per_image: Any = 8,
    holdout_fraction: Any = 0.25,
    log: Any = None,
) -> Any:
    """Writes `<name>_encoder.tflite` (fp32) and `<name>_decoder_<mode>
    .tflite` per mode into `out`; returns {"encoder": path, mode: path}.

    `checkpoint` is a Hugging Face `SamModel` folder. `calibration` is a
    folder of photos: their embeddings calibrate the decoder with
    `prompt_set` and a held-out part (`holdout_fraction`) verifies every
    mode (without it, seeded random images stand in: numerics only). A
    mode outside its gate is not written; it is listed under "rejected"
    with why, and `FidelityError` is raised when every mode is.
    """
    from edge_backbones.exporter.convert import Converter
    from edge_backbones.exporter.graph import serving_model, write_saved_model
    from edge_backbones.exporter.tflite_metadata import write_artifact
    from edge_backbones.models.sam import SAMBackbone

    log = log or (lambda line: print(line, file=sys.stderr))
    unknown = sorted(set(modes) - set(SAM_DECODER_MODES))
    if unknown:
        raise ExportError(
            f"Unknown SAM decoder modes {unknown}; known: "
            f"{sorted(SAM_DECODER_MODES)}."
        )
    os.makedirs(out, exist_ok=True)
    sam = SAMBackbone.from_preset(checkpoint)
    digest = checkpoint_digest(checkpoint)
    name = os.path.basename(os.path.normpath(checkpoint))
    height, width, _ = sam.image_encoder.image_shape
    h, w, _ = sam.embedding_shape
    work = os.path.join(out, f".{name}_work")
    paths, rejected = {}, {}

    encoder_dir = write_saved_model(
        serving_model(sam.image_encoder, (height, width)),
        os.path.join(work, "encoder"),
    )
    encoder_content = Converter(encoder_dir, log=log).fp32()

    photos = []
    if calibration is not None:
        photos = _photos(
            calibration, (height, width), sam.image_encoder.preprocessing
        )
    if not photos:
        rng = np.random.default_rng(0)
        photos = [
            rng.normal(size=(height, width, 3)).astype(np.float32)
            for _ in range(4)
        ]
    embeddings = [
        np.asarray(sam.image_encoder(photo[None])) for photo in photos
    ]
    held = max(1, int(round(len(photos) * holdout_fraction)))
    figures = _encoder_figures(
        encoder_content, photos[-held:], embeddings[-held:], sam
    )
    paths["encoder"] = os.path.join(out, f"{name}_encoder.tflite")
    write_artifact(
        paths["encoder"],
        encoder_content,
        _encoder_metadata(sam, name, digest, encoder_content, figures),
    )
    log(f"wrote {paths['encoder']}")
    calib_embeddings, holdout_embeddings = (
        embeddings[:-held],
        embeddings[-held:],
    )
    if not calib_embeddings:
        calib_embeddings = embeddings
    coords, labels = prompt_set((height, width), max_points, prompts_per_image)
    held_coords, held_labels = prompt_set(
        (height, width), max_points, prompts_per_image, seed=1
    )

    decoder = sam.decoder_model(max_points + 2)
    decoder_dir = _write_decoder_saved_model(
        decoder, os.path.join(work, "decoder")
    )

    def representative():
        for e in calib_embeddings:
            for c, lab in zip(coords, labels, strict=True):
                yield _decoder_feed(e, c, lab, h, w)

    converter = Converter(decoder_dir, representative, log=log)
    feeds = [
        _decoder_feed(e, c, lab, h, w)
        for e in holdout_embeddings
        for c, lab in zip(held_coords, held_labels, strict=True)
    ]
    reference = [
        {k: np.asarray(v) for k, v in decoder(feed).items()} for feed in feeds
    ]
    for mode in modes:
        content = _convert_decoder(converter, mode)
        measured = verify_decoder(content, reference, feeds)
        gate, failed = _gate(mode, measured)
        log(
            f"decoder {mode}: mean IoU {measured['mask_iou']['mean']:.4f}, "
            f"worst {measured['mask_iou']['worst']:.4f}, IoU-prediction "
            f"error {measured['iou_prediction_max_error']:.3g}"
        )
        if failed:
            rejected[mode] = f"{', '.join(failed)} outside its gate {gate}"
            log(f"decoder {mode}: rejected ({rejected[mode]}), not written")
            continue
        first, outputs, inputs = _decoder_io(decoder)
        metadata = {
            **_common(content, mode, measured.pop("figures"), 0.0),
            "model": _model_info(sam, name),
            "input": first,
            "outputs": outputs,
            "task": {
                **_task(sam, digest, "sam_decoder", max_points),
                "inputs": inputs,
                "prompt_verification": {**measured, "gate": gate},
            },
        }
        paths[mode] = os.path.join(out, f"{name}_decoder_{mode}.tflite")
        write_artifact(paths[mode], content, metadata)
        log(f"wrote {paths[mode]}")
    if modes and not set(modes) & set(paths):
        raise FidelityError(
            "Every SAM decoder mode fell below its gate: "
            + "; ".join(f"{m}: {why}" for m, why in rejected.items())
            + ". Try fp32 or fp16."
        )
    return {**paths, "rejected": rejected}
