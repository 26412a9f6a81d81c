"""`SAMBackbone`: Segment Anything on our `ViTDetBackbone`."""

from typing import TYPE_CHECKING, Any

import keras

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["SAMBackbone"]

# names of the decoder graph's inputs and outputs: the exported decoder's
# SignatureDef keys and the keys `SamPredictor` feeds and reads
DECODER_INPUTS = (
    "image_embeddings",
    "point_coords",
    "point_labels",
    "mask_input",
    "has_mask_input",
)
DECODER_OUTPUTS = ("masks", "iou_predictions")


def _serialize(layer):
    return keras.saving.serialize_keras_object(layer)


def _deserialize(value):
    if isinstance(value, dict):
        return keras.saving.deserialize_keras_object(value)
    return value


@keras.saving.register_keras_serializable(package="edge_backbones")
class SAMBackbone(keras.Model):
    """Segment Anything: image encoder, prompt encoder, mask decoder.

    Composes the three parts as keras-hub's `SAMBackbone` does; the image
    encoder (a `ViTDetBackbone`) is called as a whole, never taken apart.
    The model maps `images` (B, H, W, 3, normalized as the encoder's
    `preprocessing` says), `point_coords` (B, N, 2) and `point_labels`
    (B, N) (see `SAMPromptEncoder`: padding -1, box corners 2 and 3),
    `mask_input` (B, 4h, 4w, 1) and `has_mask_input` (B, 1) to `masks`
    (B, 4h, 4w, M) low-resolution logits and `iou_predictions` (B, M).

    The heavy encoder runs once per image and the light decoder once per
    prompt, so they are exported apart: `image_encoder` as any backbone,
    and `decoder_model(num_points)`, a static graph from image embeddings.

    Args:
        image_encoder: a `ViTDetBackbone`.
        prompt_encoder: a `SAMPromptEncoder` for its embedding size.
        mask_decoder: a `SAMMaskDecoder`.
    """

    def __init__(
        self,
        image_encoder: Any,
        prompt_encoder: Any,
        mask_decoder: Any,
        **kwargs: Any,
    ) -> None:
        height, width, channels = image_encoder.image_shape
        patch = image_encoder.patch_size
        grid = (height // patch, width // patch)
        if tuple(prompt_encoder.image_embedding_size) != grid:
            raise ValueError(
                "prompt_encoder.image_embedding_size="
                f"{prompt_encoder.image_embedding_size} must be the image "
                f"encoder's output grid {grid} (image_shape "
                f"{image_encoder.image_shape} / patch_size {patch})."
            )
        image_shape = (height, width, channels)
        inputs = self._prompt_inputs(grid, image_shape, None, None)
        embeddings = image_encoder(inputs["images"])
        outputs = self._decode(prompt_encoder, mask_decoder, embeddings, inputs)
        kwargs.setdefault("name", "sam_backbone")
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.image_encoder = image_encoder
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder

    @staticmethod
    def _prompt_inputs(grid, image_shape, num_points, batch_size):
        h, w = grid
        spec = {
            "point_coords": (num_points, 2),
            "point_labels": (num_points,),
            "mask_input": (4 * h, 4 * w, 1),
            "has_mask_input": (1,),
        }
        if image_shape is not None:
            spec = {"images": image_shape, **spec}
        return {
            name: keras.Input(shape, batch_size=batch_size, name=name)
            for name, shape in spec.items()
        }

    @staticmethod
    def _decode(prompt_encoder, mask_decoder, embeddings, inputs):
        prompts = prompt_encoder(
            inputs["point_coords"],
            inputs["point_labels"],
            inputs["mask_input"],
            inputs["has_mask_input"],
        )
        return mask_decoder(
            embeddings,
            prompts["prompt_dense_positional_embeddings"],
            prompts["prompt_sparse_embeddings"],
            prompts["prompt_dense_embeddings"],
        )

    @property
    def embedding_shape(self) -> Any:
        """(h, w, C) of the image embeddings the decoder takes."""
        h, w = self.prompt_encoder.image_embedding_size
        return (h, w, self.image_encoder.num_output_channels)

    def decoder_model(self, num_points: Any, batch_size: Any = 1) -> Any:
        """The prompt encoder + mask decoder as a static functional model.

        Inputs `DECODER_INPUTS` (image embeddings (h, w, C), then
        `num_points` point slots), outputs `DECODER_OUTPUTS`; it shares
        this model's weights. This is the graph the decoder export traces.
        """
        h, w, c = self.embedding_shape
        inputs = {
            "image_embeddings": keras.Input(
                (h, w, c), batch_size=batch_size, name="image_embeddings"
            ),
            **self._prompt_inputs((h, w), None, num_points, batch_size),
        }
        outputs = self._decode(
            self.prompt_encoder,
            self.mask_decoder,
            inputs["image_embeddings"],
            inputs,
        )
        return keras.Model(inputs, outputs, name="sam_mask_decoder")

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trainable": self.trainable,
            "image_encoder": _serialize(self.image_encoder),
            "prompt_encoder": _serialize(self.prompt_encoder),
            "mask_decoder": _serialize(self.mask_decoder),
        }

    @classmethod
    def from_config(cls, config: Any) -> "Self":
        config = dict(config)
        for key in ("image_encoder", "prompt_encoder", "mask_decoder"):
            config[key] = _deserialize(config[key])
        return cls(**config)

    @classmethod
    def from_preset(
        cls, preset: Any, load_weights: Any = True, **kwargs: Any
    ) -> "Self":
        """From a Hugging Face `SamModel` folder or a SAM preset name.

        Nothing is downloaded: a preset's weights load only if its
        checkpoint is on this disk (as for `ViTDetBackbone.from_preset`).
        `kwargs` override the image encoder's config (e.g. `image_shape`).
        """
        from edge_backbones.models.sam import convert_sam_decoder

        folder = convert_sam_decoder.checkpoint_folder(preset, load_weights)
        return convert_sam_decoder.build_sam_backbone(
            cls, folder, load_weights, preset, **kwargs
        )
