"""What export does differently for a segmenter: which model a checkpoint
becomes (`--task`), its `task` metadata, and its masks' verification.

A checkpoint with SegFormer's decode head exports the segmenter
(`logits` at 1/4 and `classes`) unless `task="backbone"` asks for the
encoder's pyramid; `task="segmentation"` on a head-less checkpoint is a
CheckpointError. Each artifact is verified twice on the held-out photos:
the cosine of its logits (as any backbone's levels) and its class map
against the float Keras model's (`mask_agreement`, `miou_vs_float`),
gated per mode by the registry's `min_mask_agreement`. With a labels
folder (`labels=DIR`), each artifact's logits are also scored against the
photos' own masks: true mIoU and pixel accuracy, the logits resized to
each mask's size before the argmax (as transformers'
`post_process_semantic_segmentation` does).
"""

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from edge_backbones.core.segmentation_metrics import (
    ConfusionMatrix,
    mask_agreement,
)
from edge_backbones.errors import CheckpointError, FidelityError, InputError

__all__ = [
    "SEGMENTATION",
    "TASKS",
    "check_labels_option",
    "check_masks",
    "float_nodes",
    "format_labels",
    "format_masks",
    "host_classes",
    "is_segmenter",
    "label_scores",
    "load_segmenter",
    "mask_fidelity",
    "natural_input_size",
    "task_metadata",
    "verify_masks",
    "wants_segmenter",
    "without_classes",
]

SEGMENTATION = "segmentation"
BACKBONE = "backbone"
TASKS = (BACKBONE, SEGMENTATION)
CLASSES = "classes"
LOGITS = "logits"


def is_segmenter(model: object) -> bool:
    """Whether `model` is a segmentation model (has a class map output)."""
    return hasattr(model, "class_names") and hasattr(model, "num_classes")


def _check_task(task):
    if task is not None and task not in TASKS:
        raise InputError(
            f"task={task!r}; give one of {list(TASKS)} (--task), or leave "
            "it out to export what the checkpoint holds."
        )


def wants_segmenter(model: object, task: str | None) -> bool:
    """Whether `model` (a preset name or a folder) exports as a segmenter.

    A SegFormer preset or a folder whose checkpoint holds a decode head:
    yes, unless `task` is "backbone". `task="segmentation"` on anything
    else is a CheckpointError naming the fix.
    """
    _check_task(task)
    if task == BACKBONE or not isinstance(model, (str, os.PathLike)):
        return False
    from edge_backbones.models.segformer import segmenter_presets
    from edge_backbones.models.segformer.convert_segformer_head import (
        has_decode_head,
    )

    path = os.fspath(model)
    if os.path.isdir(path):
        config = os.path.join(path, "config.json")
        head = os.path.isfile(config) and (
            has_decode_head(path) or _is_segmenter_preset_folder(config)
        )
    else:
        head = path in segmenter_presets
    if task == SEGMENTATION and not head:
        raise CheckpointError(
            f"task='segmentation' but {path!r} holds no segmentation head "
            "(a SegformerForSemanticSegmentation checkpoint, a segformer_* "
            "preset or a saved SegFormerImageSegmenter). Export its "
            "pyramid with --task backbone, or give the segmentation "
            "checkpoint."
        )
    return head


def _is_segmenter_preset_folder(config_path):
    import json

    try:
        with open(config_path) as f:
            config = json.load(f)
    except (OSError, ValueError):
        return False
    return (
        isinstance(config, dict)
        and config.get("class_name") == "SegFormerImageSegmenter"
    )


def load_segmenter(
    model: Any,
    random_weights: bool,
    kwargs: dict[str, Any],
    classes_at: str = "logits",
) -> tuple[Any, str]:
    """(segmenter, weights source) of a SegFormer preset or folder."""
    from edge_backbones.models.segformer import SegFormerImageSegmenter

    path = os.fspath(model)
    segmenter = SegFormerImageSegmenter.from_preset(
        path, load_weights=not random_weights, **kwargs
    )
    segmenter.classes_at = classes_at
    if random_weights:
        weights = "random"
    elif os.path.isdir(path):
        weights = os.path.abspath(path)
    else:
        weights = "preset"
    return segmenter, weights


def natural_input_size(preset: object) -> tuple[int, int]:
    """A segmenter preset's training resolution (height, width)."""
    from edge_backbones.models.segformer import SegFormerImageSegmenter

    return SegFormerImageSegmenter.natural_input_size(preset)


def task_metadata(segmenter: Any) -> dict[str, Any]:
    """The artifact's `task` block: what its outputs mean."""
    return {
        "kind": SEGMENTATION,
        "num_classes": int(segmenter.num_classes),
        "class_names": [str(name) for name in segmenter.class_names],
        "classes_at": segmenter.classes_at,
    }


def mask_fidelity(
    reference: Any, candidate: Any, num_classes: int
) -> dict[str, Any]:
    """The candidate's class maps against the float model's, per image.

    {"images", "mask_agreement": {"min", "mean"}, "miou_vs_float"}: the
    share of pixels with the float model's class (worst image and mean)
    and the mean IoU over all images taking the float masks as truth.
    """
    ref = np.asarray(reference[CLASSES])
    out = np.asarray(candidate[CLASSES])
    if ref.shape != out.shape:
        raise FidelityError(
            f"The exported class map has shape {out.shape}, the Keras "
            f"model's {ref.shape}; export again."
        )
    agreements = [mask_agreement(o, r) for o, r in zip(out, ref, strict=True)]
    matrix = ConfusionMatrix(max(int(num_classes), 2))
    matrix.add(out, ref)
    return {
        "images": len(agreements),
        "mask_agreement": {
            "min": float(min(agreements)),
            "mean": float(np.mean(agreements)),
        },
        "miou_vs_float": matrix.mean_iou(),
    }


def check_masks(
    masks: Mapping[str, Any], gate: float | None, mode: str, what: str
) -> None:
    """FidelityError when the worst image's mask agreement is below
    `gate` (None: no gate)."""
    if gate is None:
        return
    worst = masks["mask_agreement"]["min"]
    if not worst >= gate:
        error = FidelityError(
            f"{what}: mask agreement with the float model {worst:.4f} on "
            f"the worst held-out image is below {mode}'s gate {gate} "
            f"(mIoU vs float {masks['miou_vs_float']:.4f}). Nothing was "
            "written. Try a mode closer to float (int8_mixed, fp16), "
            "keep the lossy layers in float (--float-layers), or calibrate "
            "on photos like yours."
        )
        error.masks = masks
        raise error


def float_nodes(model_content: bytes, segmenter: Any, mode: str) -> list[str]:
    """The float graph's tensor names a segmenter keeps float in `mode`
    beyond its scheme's (the registry's [segmenter.*] float layer names
    and float outputs; `core.modes.segmenter_float_lists`)."""
    from edge_backbones.core.modes import segmenter_float_lists
    from edge_backbones.exporter.quant_debug import (
        layer_name_nodes,
        output_nodes,
    )

    names, outputs = segmenter_float_lists(mode)
    found = layer_name_nodes(model_content, segmenter, names) if names else []
    found += output_nodes(model_content, outputs) if outputs else []
    return list(dict.fromkeys(found))


def host_classes(plan: Any) -> bool:
    """Whether a segmenter's artifact for `plan` leaves its class map to
    the runtime: TFLite has no int16 ARG_MAX (int16 activations), and the
    integer-I/O int8 conversion leaves ARG_MAX without its input."""
    return bool(plan.converter == "int16x8" or plan.integer_io)


def without_classes(outputs: Mapping[str, Any]) -> dict[str, Any]:
    """`outputs` without the class map (what the cosine gate compares)."""
    return {name: v for name, v in outputs.items() if name != CLASSES}


def verify_masks(
    segmenter: Any,
    reference: Mapping[str, Any],
    outputs: dict[str, Any],
    gate: tuple[str, float | None],
    what: str,
    image_size: Sequence[int],
) -> dict[str, Any]:
    """The artifact's `task` block after its masks passed their gate
    (`gate`: (mode, minimum agreement or None)).

    An artifact without a `classes` output (int16 activations) gets the
    runtime's host-side class map, as `EdgeModel` computes it.
    """
    from edge_backbones.runtime.class_map import class_map

    in_graph = CLASSES in outputs
    if not in_graph:
        outputs[CLASSES] = class_map(
            outputs[LOGITS], segmenter.classes_at, image_size
        )
    masks = mask_fidelity(reference, outputs, segmenter.num_classes)
    mode, minimum = gate
    check_masks(masks, minimum, mode, what)
    return {
        **task_metadata(segmenter),
        "classes_in_graph": in_graph,
        "verification": {
            **masks,
            "min_mask_agreement": minimum,
        },
    }


def check_labels_option(
    labels: str | os.PathLike[str] | None,
    reduce_labels: bool,
    model: Any,
    calibration: Any,
) -> list[str] | None:
    """The held-out photos' mask paths, in the held-out order (None
    without `labels`), every mask checked before any conversion.

    Raises:
        InputError: labels for a model that is no segmenter, without
            photos, or a folder `core.segmentation_labels.check_labels`
            refuses (a missing mask, another size, ids out of range).
    """
    if labels is None:
        if reduce_labels:
            raise InputError(
                "reduce_labels=True without labels: give the folder of "
                "label masks (--labels DIR), or leave --reduce-labels out."
            )
        return None
    if not is_segmenter(model):
        raise InputError(
            f"--labels {os.fspath(labels)!r} scores a segmenter's masks, "
            f"but {getattr(model, 'name', 'the model')!r} exports a "
            "backbone; give a segmentation checkpoint, or leave --labels "
            "out."
        )
    if calibration is None:
        raise InputError(
            f"--labels {os.fspath(labels)!r} labels held-out photos, but no "
            "photos were given; pass the photos too (--calibration DIR)."
        )
    from edge_backbones.core.segmentation_labels import check_labels

    photos = list(calibration.paths("holdout"))
    found = check_labels(labels, photos, int(model.num_classes), reduce_labels)
    return [found[os.fspath(photo)] for photo in photos]


def label_scores(
    logits: Any,
    masks: Sequence[str],
    num_classes: int,
    reduce_labels: bool,
    source: str,
) -> dict[str, Any]:
    """True mIoU and pixel accuracy of (batch, h, w, C) `logits` against
    the label masks at `masks` (one per image, in order).

    Each image's logits are resized bilinearly to its mask's size, then
    turned into classes (`runtime.class_map`), so the score is at the
    photo's own resolution; mask pixels of 255 are not counted.
    """
    from edge_backbones.core.segmentation_labels import read_label
    from edge_backbones.runtime.class_map import class_map

    batch = np.asarray(logits)
    if len(batch) != len(masks):
        raise FidelityError(
            f"{len(batch)} logits for {len(masks)} label masks; every "
            "held-out photo needs its mask."
        )
    matrix = ConfusionMatrix(max(int(num_classes), 2))
    for image_logits, path in zip(batch, masks, strict=True):
        truth = read_label(path, reduce_labels)
        predicted = class_map(image_logits[None], "input", truth.shape)[0]
        matrix.add(predicted, truth)
    return {
        **matrix.summary(),
        "source": source,
        "reduce_labels": bool(reduce_labels),
    }


def format_masks(task: Mapping[str, Any]) -> str:
    """One progress line of the masks' figures (and, with labels, the
    true mIoU and pixel accuracy)."""
    figures = task["verification"]
    agreement = figures["mask_agreement"]
    line = (
        f"mask agreement with float min {100 * agreement['min']:.2f} % "
        f"(mean {100 * agreement['mean']:.2f} %), mIoU vs float "
        f"{figures['miou_vs_float']:.4f} on {figures['images']} images"
    )
    if "labels" in figures:
        line += "; " + format_labels(figures["labels"])
    return line


def format_labels(scores: Mapping[str, Any]) -> str:
    """The labels' figures in words."""
    return (
        f"labels: mIoU {scores['mean_iou']:.4f}, pixel accuracy "
        f"{100 * scores['pixel_accuracy']:.2f} %"
    )
