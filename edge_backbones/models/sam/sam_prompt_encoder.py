"""`SAMPromptEncoder`: Segment Anything's points, boxes and mask prompts."""

from typing import Any

import keras
import numpy as np
from keras import ops

from edge_backbones.models.layers import EdgeLayerNormalization
from edge_backbones.models.sam.sam_layers import (
    fourier_features,
    image_grid_coordinates,
    max_fourier_argument,
)

__all__ = ["LABELS", "SAMPromptEncoder"]

# Point labels, as segment-anything's ONNX decoder takes them: -1 is "not a
# point" (padding), 0 background, 1 foreground, 2 and 3 a box's top-left and
# bottom-right corners.
LABELS = (-1, 0, 1, 2, 3)


@keras.saving.register_keras_serializable(package="edge_backbones")
class SAMPromptEncoder(keras.layers.Layer):
    """Embeds SAM's prompts as a static graph.

    Points and box corners arrive together, as segment-anything's ONNX
    export takes them: `points` (B, N, 2) in pixels of the encoder's input
    frame (x, y), `labels` (B, N) from `LABELS` (float or int), with unused
    slots labelled -1. A box is two points labelled 2 and 3. Each label's
    embedding is a one-hot row (relu(1 - (label - k)^2), exact for
    integer labels) times a table, so no GATHER or comparison reaches the
    graph.
    `mask_input` (B, 4h, 4w, 1) is a previous low-resolution mask logit,
    used where `has_mask_input` (B, 1) is 1; otherwise the learned "no
    mask" embedding.

    Returns a dict: `prompt_sparse_embeddings` (B, N, C),
    `prompt_dense_embeddings` (B, h, w, C) and
    `prompt_dense_positional_embeddings` (1, h, w, C), the image-wide
    position encoding the mask decoder adds to the image embeddings.

    Args:
        hidden_size: embedding width C (the mask decoder's).
        image_embedding_size: (h, w) of the image encoder's output.
        input_image_size: (height, width) of the encoder's input, the frame
            point coordinates are in.
        mask_in_channels: channels of the mask-input downscaler.
        activation: activation of the mask-input downscaler.
        layer_norm_epsilon: epsilon of the downscaler's layer norms.
    """

    def __init__(
        self,
        hidden_size: Any = 256,
        image_embedding_size: Any = (64, 64),
        input_image_size: Any = (1024, 1024),
        mask_in_channels: Any = 16,
        activation: Any = "gelu",
        layer_norm_epsilon: Any = 1e-06,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.image_embedding_size = tuple(image_embedding_size)
        self.input_image_size = tuple(input_image_size)
        self.mask_in_channels = mask_in_channels
        self.activation = activation
        self.layer_norm_epsilon = layer_norm_epsilon
        policy = self.dtype_policy
        self.mask_conv1 = keras.layers.Conv2D(
            mask_in_channels // 4, 2, strides=2, dtype=policy, name="mask_conv1"
        )
        self.mask_norm1 = EdgeLayerNormalization(
            layer_norm_epsilon, dtype=policy, name="mask_norm1"
        )
        self.mask_conv2 = keras.layers.Conv2D(
            mask_in_channels, 2, strides=2, dtype=policy, name="mask_conv2"
        )
        self.mask_norm2 = EdgeLayerNormalization(
            layer_norm_epsilon, dtype=policy, name="mask_norm2"
        )
        self.mask_conv3 = keras.layers.Conv2D(
            hidden_size, 1, dtype=policy, name="mask_conv3"
        )

    def build(self, *args: Any, **kwargs: Any) -> None:
        c = self.hidden_size
        self.positional_embedding = self.add_weight(
            name="positional_embedding",
            shape=(2, c // 2),
            initializer=keras.initializers.RandomNormal(stddev=1.0),
        )
        self.not_a_point_embedding = self.add_weight(
            name="not_a_point_embedding", shape=(1, c)
        )
        self.point_embeddings = [
            self.add_weight(name=f"point_embedding{k}", shape=(1, c))
            for k in range(4)
        ]
        self.no_mask_embedding = self.add_weight(
            name="no_mask_embedding", shape=(1, c)
        )
        h, w = self.image_embedding_size
        self.mask_conv1.build((None, 4 * h, 4 * w, 1))
        quarter = self.mask_in_channels // 4
        self.mask_norm1.build((None, 2 * h, 2 * w, quarter))
        self.mask_conv2.build((None, 2 * h, 2 * w, quarter))
        self.mask_norm2.build((None, h, w, self.mask_in_channels))
        self.mask_conv3.build((None, h, w, self.mask_in_channels))

    def max_sin_argument(self) -> float:
        """The largest |argument| of the position encoding's sines for
        points inside the input frame (what `polynomial_sin` needs)."""
        return max_fourier_argument(self.positional_embedding)

    def dense_positional_embeddings(self) -> Any:
        """(1, h, w, C): the encoding of every image-embedding cell."""
        h, w = self.image_embedding_size
        grid = ops.convert_to_tensor(image_grid_coordinates(h, w))
        encoded = fourier_features(grid, self.positional_embedding)
        return ops.reshape(encoded, (1, h, w, self.hidden_size))

    def _sparse(self, points, labels):
        height, width = self.input_image_size
        # pixel centres, normalized by the input frame (x by width)
        scale = np.array([1.0 / width, 1.0 / height], "float32")
        coordinates = (ops.cast(points, "float32") + 0.5) * scale
        encoded = fourier_features(coordinates, self.positional_embedding)
        labels = ops.cast(labels, "float32")
        offsets = np.array(LABELS, "float32")
        # 1 - d^2, not 1 - |d|: the same at integers, and the HTP has no
        # int16 ABS
        distance = labels[..., None] - offsets
        one_hot = ops.relu(1.0 - distance * distance)
        table = ops.concatenate(
            [self.not_a_point_embedding, *self.point_embeddings], axis=0
        )
        # "not a point" replaces the encoding; the other labels add to it
        keep = 1.0 - one_hot[..., :1]
        return encoded * keep + ops.matmul(one_hot, table)

    def _dense(self, mask_input, has_mask_input):
        act = keras.activations.get(self.activation)
        x = act(self.mask_norm1(self.mask_conv1(mask_input)))
        x = act(self.mask_norm2(self.mask_conv2(x)))
        embedded = self.mask_conv3(x)
        has = ops.reshape(ops.cast(has_mask_input, "float32"), (-1, 1, 1, 1))
        no_mask = ops.reshape(self.no_mask_embedding, (1, 1, 1, -1))
        return embedded * has + no_mask * (1.0 - has)

    def call(
        self, points: Any, labels: Any, mask_input: Any, has_mask_input: Any
    ) -> Any:
        return {
            "prompt_sparse_embeddings": self._sparse(points, labels),
            "prompt_dense_embeddings": self._dense(mask_input, has_mask_input),
            "prompt_dense_positional_embeddings": (
                self.dense_positional_embeddings()
            ),
        }

    def compute_output_shape(self, points_shape: Any, *args: Any) -> Any:
        h, w = self.image_embedding_size
        c = self.hidden_size
        return {
            "prompt_sparse_embeddings": (*points_shape[:2], c),
            "prompt_dense_embeddings": (points_shape[0], h, w, c),
            "prompt_dense_positional_embeddings": (1, h, w, c),
        }

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "hidden_size": self.hidden_size,
            "image_embedding_size": self.image_embedding_size,
            "input_image_size": self.input_image_size,
            "mask_in_channels": self.mask_in_channels,
            "activation": self.activation,
            "layer_norm_epsilon": self.layer_norm_epsilon,
        }
