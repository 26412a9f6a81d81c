"""`SAMImageSegmenter`: promptable masks from a `SAMBackbone`."""

from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from edge_backbones.models.sam.sam_backbone import SAMBackbone

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["SAMImageSegmenter"]


@keras.saving.register_keras_serializable(package="edge_backbones")
class SAMImageSegmenter(keras.Model):
    """SAM as a task: normalized images + prompts -> masks and IoU.

    Wraps a `SAMBackbone` (keras-hub's task/backbone split) and applies
    SAM's output choice: with `multimask` the 3 multimask outputs, else the
    single-mask one (index 0). Inputs are in the encoder's frame (resized
    and padded images, pixel coordinates in it); the mapping from a user's
    photo is the runtime's `SamPredictor`.
    """

    def __init__(self, backbone: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.backbone = backbone

    def call(self, inputs: Any, multimask: Any = True) -> Any:
        outputs = self.backbone(inputs)
        keep = slice(1, None) if multimask else slice(0, 1)
        return {
            "masks": outputs["masks"][..., keep],
            "iou_predictions": outputs["iou_predictions"][..., keep],
        }

    def segment(
        self,
        images: Any,
        point_coords: Any,
        point_labels: Any,
        mask_input: Any = None,
        multimask: Any = True,
    ) -> Any:
        """numpy in, numpy out; `mask_input` None means no mask prompt."""
        images = np.asarray(images, "float32")
        batch = images.shape[0]
        h, w, _ = self.backbone.embedding_shape
        has = np.zeros((batch, 1), "float32")
        if mask_input is None:
            mask_input = np.zeros((batch, 4 * h, 4 * w, 1), "float32")
        else:
            has[:] = 1.0
        outputs = self(
            {
                "images": images,
                "point_coords": np.asarray(point_coords, "float32"),
                "point_labels": np.asarray(point_labels, "float32"),
                "mask_input": np.asarray(mask_input, "float32"),
                "has_mask_input": has,
            },
            multimask=multimask,
        )
        return {k: keras.ops.convert_to_numpy(v) for k, v in outputs.items()}

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "backbone": keras.saving.serialize_keras_object(self.backbone),
        }

    @classmethod
    def from_config(cls, config: Any) -> "Self":
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(
            config["backbone"]
        )
        return cls(**config)

    @classmethod
    def from_preset(
        cls, preset: Any, load_weights: Any = True, **kwargs: Any
    ) -> "Self":
        return cls(SAMBackbone.from_preset(preset, load_weights, **kwargs))
