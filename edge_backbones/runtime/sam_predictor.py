"""`SamPredictor`: Segment Anything on two exported models, TF-free.

As segment-anything's `SamPredictor`: `set_image` runs the heavy encoder
once; `predict` runs the light decoder per prompt. The mapping of prompts
from the photo into the encoder's frame (longest side resized to the input
size, padding bottom/right) and of masks back to the photo lives here.

The decoder is the static graph `SAMBackbone.decoder_model` exports:
`point_coords` (1, P, 2) and `point_labels` (1, P) hold the user's points,
then the box's corners (labels 2, 3) or, without a box, "not a point"
(-1) padding, as segment-anything's predictor lays them out; `mask_input`
(1, 4h, 4w, 1) with `has_mask_input`. Its outputs hold every mask: index 0
is the single-mask output, 1.. the multimask ones.

Both artifacts record a `task` object in their metadata (kind
"sam_encoder" / "sam_decoder", the checkpoint's digest, the encoder's
input size and embedding shape), so a pair from different checkpoints or
sizes is refused before it can produce wrong masks.
"""

import dataclasses
import os
from typing import Any

import numpy as np
import numpy.typing as npt

from edge_backbones.errors import ImageNotSetError, InputError, MetadataError

__all__ = [
    "SamPrediction",
    "SamPredictor",
    "SignatureModel",
    "map_coordinates",
    "resized_size",
]

ENCODER_KIND = "sam_encoder"
DECODER_KIND = "sam_decoder"
# what ties an encoder to its decoder
_TIED_FIELDS = ("checkpoint_sha256", "image_size", "embedding_shape")
_SIGNATURE = "serving_default"


def resized_size(
    original_size: tuple[int, int], input_size: tuple[int, int]
) -> tuple[int, int]:
    """(height, width) of the photo inside the encoder's input after SAM's
    longest-side resize (`preprocess.resize`'s arithmetic, rounding half
    up as segment-anything's `ResizeLongestSide`)."""
    (height, width), (in_height, in_width) = original_size, input_size
    ratio = min(in_height / height, in_width / width)
    return (
        min(in_height, int(height * ratio + 0.5)),
        min(in_width, int(width * ratio + 0.5)),
    )


def map_coordinates(
    coords: npt.ArrayLike,
    original_size: tuple[int, int],
    input_size: tuple[int, int],
) -> npt.NDArray[np.float32]:
    """(..., 2) (x, y) pixels of the photo -> of the encoder's input."""
    new_height, new_width = resized_size(original_size, input_size)
    scale = np.array(
        [new_width / original_size[1], new_height / original_size[0]]
    )
    mapped: npt.NDArray[np.float32] = (
        np.asarray(coords, np.float64) * scale
    ).astype(np.float32)
    return mapped


@dataclasses.dataclass(frozen=True)
class SamPrediction:
    """`masks` (K, H, W) bool at the photo's size, `scores` (K,) predicted
    IoU, `low_res_logits` (K, 4h, 4w) (feed one back as `mask_input`)."""

    masks: npt.NDArray[np.bool_]
    scores: npt.NDArray[np.float32]
    low_res_logits: npt.NDArray[np.float32]


class SignatureModel:
    """A multi-input .tflite run through its SignatureDef, float in/out."""

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        num_threads: int | None = None,
        backend: str | None = None,
    ) -> None:
        from edge_backbones.runtime.backends import load_backend
        from edge_backbones.runtime.metadata import load_metadata
        from edge_backbones.runtime.model_file import read_model_file

        self.model_path = os.fspath(model_path)
        model_file = read_model_file(self.model_path)
        self.metadata, self.integrity = load_metadata(
            self.model_path, model_file
        )
        from edge_backbones.runtime.npu_engines import (
            QnnHtpSimulatorEngine,
            open_npu_engine,
        )

        # a file compiled for an NPU runs in its vendor's simulation here
        engine = open_npu_engine(self.model_path, self.metadata, num_threads)
        if engine is not None and not isinstance(engine, QnnHtpSimulatorEngine):
            raise MetadataError(
                f"{self.model_path!r} is compiled for an NPU whose "
                "simulation here takes one input; SAM artifacts run in "
                "QNN's HTP simulation only. Run the exported artifact it "
                "came from."
            )
        self._npu = engine
        if self._npu is not None:
            self.input_details, self.output_details = _compiled_details(
                self.metadata, self.model_path
            )
            return
        interpreter = load_backend(backend).Interpreter(
            model_path=self.model_path, num_threads=num_threads
        )
        signatures = interpreter.get_signature_list()
        if _SIGNATURE not in signatures:
            raise MetadataError(
                f"{self.model_path!r} has no {_SIGNATURE!r} SignatureDef "
                f"(has {sorted(signatures)}); export the decoder again."
            )
        self._runner = interpreter.get_signature_runner(_SIGNATURE)
        self.input_details = self._runner.get_input_details()
        self.output_details = self._runner.get_output_details()

    def __call__(self, **arrays: Any) -> dict[str, npt.NDArray[np.float32]]:
        feed = {}
        for name, details in self.input_details.items():
            value = np.asarray(arrays[name], np.float32)
            scale, zero = (details.get("quantization") or (0.0, 0))[:2]
            if np.issubdtype(details["dtype"], np.integer) and scale:
                info = np.iinfo(details["dtype"])
                value = np.clip(
                    np.rint(value / scale + zero), info.min, info.max
                )
            feed[name] = value.astype(details["dtype"])
        if self._npu is not None:
            raw = self._npu.run_signature(
                _SIGNATURE, feed, list(self.output_details)
            )
        else:
            raw = self._runner(**feed)
        out: dict[str, npt.NDArray[np.float32]] = {}
        for name, value in raw.items():
            scale, zero = (
                self.output_details[name].get("quantization") or (0.0, 0)
            )[:2]
            value = value.astype(np.float32)
            out[str(name)] = (
                ((value - zero) * scale).astype(np.float32) if scale else value
            )
        return out


def _compiled_details(
    metadata: Any, where: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Input and output details of a compiled SAM artifact, from the
    metadata its source recorded (dtype, shape, scale and zero point)."""
    task = (metadata or {}).get("task") or {}
    outputs = (metadata or {}).get("outputs")
    if task.get("kind") == DECODER_KIND:
        inputs = task.get("inputs")
    else:
        first = (metadata or {}).get("input") or {}
        inputs = {first.get("name"): first} if first else None
    if not isinstance(inputs, dict) or not isinstance(outputs, dict):
        raise MetadataError(
            f"{where!r} is compiled for an NPU but its metadata lists no "
            "inputs and outputs (task.inputs, outputs); compile it again "
            "from an artifact this package exported."
        )

    def details(spec: Any) -> dict[str, Any]:
        quantization = spec.get("quantization") or {}
        return {
            "dtype": np.dtype(spec["dtype"]),
            "shape": np.asarray(spec["shape"]),
            "quantization": (
                float(quantization.get("scale", 0.0)),
                int(quantization.get("zero_point", 0)),
            ),
        }

    return (
        {name: details(spec) for name, spec in inputs.items()},
        {name: details(spec) for name, spec in outputs.items()},
    )


def _task(metadata: Any, kind: str, where: str) -> dict[str, Any]:
    task = (metadata or {}).get("task")
    if not isinstance(task, dict) or task.get("kind") != kind:
        found = None if not isinstance(task, dict) else task.get("kind")
        raise MetadataError(
            f"{where} is not a SAM {kind.split('_')[1]} (its metadata's task "
            f"kind is {found!r}, expected {kind!r}). Pass the encoder and "
            "decoder files exported together from one SAM checkpoint."
        )
    return task


class SamPredictor:
    """Segment Anything on an exported encoder + decoder pair.

    Args:
        encoder: the encoder .tflite (path or `EdgeModel`).
        decoder: the decoder .tflite (path).
        num_threads: CPU threads for both interpreters.

    Raises `MetadataError` when the two do not belong together (different
    checkpoint, image size or embedding shape). Every `predict` error is an
    `InputError` (or `ImageNotSetError`) raised before anything runs, so
    the predictor stays usable.
    """

    def __init__(
        self, encoder: Any, decoder: Any, num_threads: int | None = None
    ) -> None:
        from edge_backbones.runtime.edge_model import EdgeModel

        if not isinstance(encoder, EdgeModel):
            encoder = EdgeModel(encoder, num_threads=num_threads)
        if not isinstance(decoder, SignatureModel):
            decoder = SignatureModel(decoder, num_threads=num_threads)
        self.encoder, self.decoder = encoder, decoder
        encoder_task = _task(
            encoder.metadata, ENCODER_KIND, repr(encoder.model_path)
        )
        decoder_task = _task(
            decoder.metadata, DECODER_KIND, repr(decoder.model_path)
        )
        differ = [
            f"{field}: encoder {encoder_task.get(field)!r}, decoder "
            f"{decoder_task.get(field)!r}"
            for field in _TIED_FIELDS
            if encoder_task.get(field) != decoder_task.get(field)
        ]
        if differ:
            raise MetadataError(
                f"{encoder.model_path!r} and {decoder.model_path!r} are not "
                "a pair: " + "; ".join(differ) + ". Export both from one "
                "checkpoint at one image size, and pass those two files."
            )
        self.input_size = tuple(encoder.image_size)
        self.embedding_shape = tuple(decoder_task["embedding_shape"])
        self.max_points = int(decoder_task["max_points"])
        self.num_point_slots = self.max_points + 2
        self._embeddings: npt.NDArray[np.float32] | None = None
        self._original_size: tuple[int, int] = (0, 0)
        self._last_pixels: npt.NDArray[np.uint8] | None = None

    # -- the image ------------------------------------------------------

    def set_image(self, image: Any) -> None:
        """Runs the encoder on a photo (path or RGB uint8 array) once."""
        from edge_backbones.runtime.preprocess import load_image

        pixels = load_image(image)
        outputs = self.encoder(self.encoder.preprocess(pixels))
        (embeddings,) = outputs.values()
        self._embeddings = embeddings
        self._original_size = (int(pixels.shape[0]), int(pixels.shape[1]))
        self._last_pixels = pixels

    @property
    def original_size(self) -> tuple[int, int]:
        """(height, width) of the photo given to `set_image`."""
        self._require_image()
        return self._original_size

    def _require_image(self) -> None:
        if self._embeddings is None:
            raise ImageNotSetError(
                "predict() was called before set_image(): call "
                "predictor.set_image(photo) first (once per photo)."
            )

    # -- prompts --------------------------------------------------------

    def _checked_points(
        self, points: Any, labels: Any
    ) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
        height, width = self._original_size
        if points is None:
            if labels is not None:
                raise InputError("labels were given without points.")
            return np.zeros((0, 2), np.float32), np.zeros(0, np.float32)
        points = np.asarray(points, np.float64)
        if points.ndim == 1 and points.size == 2:
            points = points[None]
        if points.ndim != 2 or points.shape[1] != 2:
            raise InputError(
                f"points of shape {points.shape}; pass (N, 2) (x, y) pixels."
            )
        self._check_finite(points, "points")
        if len(points) > self.max_points:
            raise InputError(
                f"{len(points)} points; this decoder was exported for at "
                f"most {self.max_points}. Pass fewer, or export the decoder "
                "again with more point slots."
            )
        outside = (
            (points[:, 0] < 0)
            | (points[:, 0] > width)
            | (points[:, 1] < 0)
            | (points[:, 1] > height)
        )
        if outside.any():
            first = points[np.argmax(outside)].tolist()
            raise InputError(
                f"point {first} is outside the {width}x{height} image set "
                "with set_image; points are (x, y) pixels of that image."
            )
        if labels is None:
            labels = np.ones(len(points))
        labels = np.asarray(labels, np.float64).reshape(-1)
        if len(labels) != len(points) or not np.isin(labels, (0, 1)).all():
            raise InputError(
                f"labels {labels.tolist()} for {len(points)} points; pass "
                "one label per point, 1 (foreground) or 0 (background)."
            )
        return points, labels

    def _checked_box(self, box: Any) -> npt.NDArray[Any]:
        height, width = self._original_size
        box = np.asarray(box, np.float64).reshape(-1)
        if box.size != 4:
            raise InputError(
                f"box of {box.size} values; pass (x0, y0, x1, y1) pixels."
            )
        self._check_finite(box, "box")
        x0, y0, x1, y1 = box
        if x1 < x0 or y1 < y0:
            raise InputError(
                f"box {box.tolist()} has x1 < x0 or y1 < y0; pass the "
                "top-left corner first: (x0, y0, x1, y1)."
            )
        if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
            raise InputError(
                f"box {box.tolist()} reaches outside the {width}x{height} "
                "image set with set_image."
            )
        corners: npt.NDArray[Any] = box.reshape(2, 2)
        return corners

    def _checked_mask(self, mask_input: Any) -> npt.NDArray[Any]:
        h, w = self.embedding_shape[:2]
        mask = np.asarray(mask_input, np.float32)
        if mask.ndim == 3 and mask.shape[0] == 1:
            mask = mask[0]
        if mask.shape != (4 * h, 4 * w):
            raise InputError(
                f"mask_input of shape {mask.shape}; the decoder takes "
                f"({4 * h}, {4 * w}) low-resolution logits: pass one of a "
                "previous prediction's low_res_logits."
            )
        self._check_finite(mask, "mask_input")
        return mask

    @staticmethod
    def _check_finite(values: npt.NDArray[Any], what: str) -> None:
        if not np.isfinite(values).all():
            raise InputError(
                f"{what} holds NaN or Inf ({values.tolist()!s:.80}); pass "
                "finite pixel coordinates."
            )

    def _prompt_arrays(
        self,
        points: npt.NDArray[Any],
        labels: npt.NDArray[Any],
        box: npt.NDArray[Any] | None,
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        slots = self.num_point_slots
        coords = np.zeros((slots, 2), np.float32)
        kinds = np.full(slots, -1.0, np.float32)
        n = len(points)
        size = self._original_size
        coords[:n] = map_coordinates(points, size, self.input_size)
        kinds[:n] = labels
        if box is not None:
            coords[n : n + 2] = map_coordinates(box, size, self.input_size)
            kinds[n : n + 2] = (2, 3)
        return coords[None], kinds[None]

    def predict(
        self,
        points: Any = None,
        labels: Any = None,
        box: Any = None,
        mask_input: Any = None,
        multimask: bool = True,
    ) -> SamPrediction:
        """Masks for one prompt on the image of the last `set_image`.

        Args:
            points: (N, 2) (x, y) pixels of the photo.
            labels: (N,) 1 foreground, 0 background (default all 1).
            box: (x0, y0, x1, y1) pixels of the photo.
            mask_input: (4h, 4w) low-resolution logits of a previous
                prediction (its `low_res_logits[i]`).
            multimask: three masks (SAM's ambiguity-aware output) or one.

        Returns a `SamPrediction`.
        """
        self._require_image()
        points, labels = self._checked_points(points, labels)
        box = None if box is None else self._checked_box(box)
        if len(points) == 0 and box is None:
            raise InputError(
                "no prompt: pass points (with labels) and/or a box."
            )
        h, w = self.embedding_shape[:2]
        has_mask = np.zeros((1, 1), np.float32)
        mask = np.zeros((1, 4 * h, 4 * w, 1), np.float32)
        if mask_input is not None:
            mask[0, ..., 0] = self._checked_mask(mask_input)
            has_mask[:] = 1.0
        coords, kinds = self._prompt_arrays(points, labels, box)
        outputs = self.decoder(
            image_embeddings=self._embeddings,
            point_coords=coords,
            point_labels=kinds,
            mask_input=mask,
            has_mask_input=has_mask,
        )
        keep = slice(1, None) if multimask else slice(0, 1)
        logits = np.moveaxis(outputs["masks"][0], -1, 0)[keep]
        scores = outputs["iou_predictions"][0][keep]
        return SamPrediction(
            masks=self.upscale_logits(logits) > 0,
            scores=scores,
            low_res_logits=logits,
        )

    def upscale_logits(
        self, low_res_logits: npt.NDArray[Any]
    ) -> npt.NDArray[np.float32]:
        """(K, 4h, 4w) logits -> (K, H, W) at the photo's size, as SAM's
        postprocessing: bilinear to the encoder's input, crop the padding,
        bilinear to the photo."""
        import cv2

        in_height, in_width = self.input_size
        new_height, new_width = resized_size(
            self._original_size, self.input_size
        )
        height, width = self._original_size
        out = []
        for logits in low_res_logits:
            full = cv2.resize(
                logits, (in_width, in_height), interpolation=cv2.INTER_LINEAR
            )
            cropped = np.ascontiguousarray(full[:new_height, :new_width])
            out.append(
                cv2.resize(
                    cropped, (width, height), interpolation=cv2.INTER_LINEAR
                )
            )
        return np.stack(out)
