"""Layers of Segment Anything's prompt encoder and mask decoder.

Written for the edge as the backbones' layers are: batch-first, every
tensor at rank <= 4, sizes from the static shape seen at call time, and
only ops that lower to TFLite builtins (no GATHER, no dynamic shapes), so
the decoder traced at batch 1 with a fixed number of points is a static
graph. Layer norms are `EdgeLayerNormalization`; softmaxes go through
`softmax_float32`, so the integer export forms apply here too.
"""

import math
from typing import Any

import keras
import numpy as np
from keras import ops

from edge_backbones.models.layers import (
    EdgeLayerNormalization,
    sin_cos,
    softmax_float32,
)

__all__ = [
    "SAMAttention",
    "SAMFeedForward",
    "SAMTwoWayBlock",
    "fourier_features",
    "image_grid_coordinates",
    "max_fourier_argument",
]


def fourier_features(coordinates: Any, gaussian_matrix: Any) -> Any:
    """SAM's random Fourier position encoding of points in [0, 1]^2.

    (..., 2) -> (..., 2 * F) as [sin(2 pi (2c - 1) G), cos(...)], through
    `models.layers.sin_cos` (SIN ops, or MUL/ADD/SUB inside
    `polynomial_sin()`).
    """
    projected = ops.matmul(2.0 * coordinates - 1.0, gaussian_matrix)
    projected = (2.0 * math.pi) * projected
    return ops.concatenate(sin_cos(projected), axis=-1)


def max_fourier_argument(gaussian_matrix: Any) -> float:
    """The largest |argument| `fourier_features` passes to sin for points
    in [0, 1]^2 (eager: reads the matrix's values)."""
    matrix = np.abs(keras.ops.convert_to_numpy(gaussian_matrix))
    return float(2.0 * math.pi * matrix.sum(axis=0).max())


def image_grid_coordinates(height: Any, width: Any) -> Any:
    """(1, height * width, 2) normalized (x, y) of each embedding cell's
    centre, row-major: the points SAM's image-wide encoding is taken at."""
    y, x = np.meshgrid(
        (np.arange(height) + 0.5) / height,
        (np.arange(width) + 0.5) / width,
        indexing="ij",
    )
    grid = np.stack([x, y], axis=-1).reshape(1, height * width, 2)
    return grid.astype("float32")


@keras.saving.register_keras_serializable(package="edge_backbones")
class SAMFeedForward(keras.layers.Layer):
    """`num_layers` Dense layers with ReLU between them (SAM's MLP heads)."""

    def __init__(
        self,
        hidden_dim: Any,
        output_dim: Any,
        num_layers: Any,
        sigmoid_output: Any = False,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.hidden_dim = hidden_dim
        self.output_dim = output_dim
        self.num_layers = num_layers
        self.sigmoid_output = sigmoid_output
        widths = [hidden_dim] * (num_layers - 1) + [output_dim]
        self.dense_layers = [
            keras.layers.Dense(width, dtype=self.dtype_policy, name=f"dense{i}")
            for i, width in enumerate(widths)
        ]

    def build(self, input_shape: Any) -> None:
        shape = tuple(input_shape)
        for layer in self.dense_layers:
            layer.build(shape)
            shape = (*shape[:-1], layer.units)

    def call(self, x: Any) -> Any:
        for i, layer in enumerate(self.dense_layers):
            x = layer(x)
            if i < self.num_layers - 1:
                x = ops.relu(x)
        return ops.sigmoid(x) if self.sigmoid_output else x

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (*input_shape[:-1], self.output_dim)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "hidden_dim": self.hidden_dim,
            "output_dim": self.output_dim,
            "num_layers": self.num_layers,
            "sigmoid_output": self.sigmoid_output,
        }


@keras.saving.register_keras_serializable(package="edge_backbones")
class SAMAttention(keras.layers.Layer):
    """Multi-head attention whose q/k/v may be narrower than the tokens.

    SAM's decoder attends at `hidden_size // downsample_rate` channels
    between token sets of different lengths: queries (B, Nq, C), keys and
    values (B, Nk, C) -> (B, Nq, C). Heads at rank 4.
    """

    def __init__(
        self,
        hidden_size: Any,
        num_heads: Any,
        downsample_rate: Any = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.downsample_rate = downsample_rate
        self.internal_dim = hidden_size // downsample_rate
        if self.internal_dim % num_heads:
            raise ValueError(
                f"num_heads={num_heads} must divide hidden_size // "
                f"downsample_rate = {self.internal_dim}."
            )
        policy = self.dtype_policy
        self.q_proj = keras.layers.Dense(
            self.internal_dim, dtype=policy, name="q_proj"
        )
        self.k_proj = keras.layers.Dense(
            self.internal_dim, dtype=policy, name="k_proj"
        )
        self.v_proj = keras.layers.Dense(
            self.internal_dim, dtype=policy, name="v_proj"
        )
        self.out_proj = keras.layers.Dense(
            hidden_size, dtype=policy, name="out_proj"
        )

    def build(
        self, query_shape: Any, key_shape: Any = None, value_shape: Any = None
    ) -> None:
        tokens = (None, None, self.hidden_size)
        for layer in (self.q_proj, self.k_proj, self.v_proj):
            layer.build(tokens)
        self.out_proj.build((None, None, self.internal_dim))

    def _heads(self, x):
        # (B, N, heads * d) -> (B, heads, N, d)
        length = ops.shape(x)[1]
        head_dim = self.internal_dim // self.num_heads
        x = ops.reshape(x, (-1, length, self.num_heads, head_dim))
        return ops.transpose(x, (0, 2, 1, 3))

    def call(self, query: Any, key: Any, value: Any) -> Any:
        length = ops.shape(query)[1]
        q = self._heads(self.q_proj(query))
        k = self._heads(self.k_proj(key))
        v = self._heads(self.v_proj(value))
        head_dim = self.internal_dim // self.num_heads
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2)))
        scores = scores * (head_dim**-0.5)
        weights = softmax_float32(scores, self.compute_dtype)
        x = ops.transpose(ops.matmul(weights, v), (0, 2, 1, 3))
        x = ops.reshape(x, (-1, length, self.internal_dim))
        return self.out_proj(x)

    def compute_output_shape(self, query_shape: Any, *args: Any) -> Any:
        return tuple(query_shape)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "hidden_size": self.hidden_size,
            "num_heads": self.num_heads,
            "downsample_rate": self.downsample_rate,
        }


@keras.saving.register_keras_serializable(package="edge_backbones")
class SAMTwoWayBlock(keras.layers.Layer):
    """One block of SAM's two-way transformer.

    Self-attention of the prompt tokens, tokens -> image cross-attention,
    an MLP on the tokens, image -> tokens cross-attention; each followed by
    a residual and a layer norm. The first block's self-attention takes
    the tokens without their position encoding and has no residual
    (`skip_first_layer_pe`), as SAM's.
    """

    def __init__(
        self,
        hidden_size: Any,
        num_heads: Any,
        intermediate_dim: Any,
        attention_downsample_rate: Any = 2,
        skip_first_layer_pe: Any = False,
        activation: Any = "relu",
        layer_norm_epsilon: Any = 1e-06,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.attention_downsample_rate = attention_downsample_rate
        self.skip_first_layer_pe = skip_first_layer_pe
        self.activation = activation
        self.layer_norm_epsilon = layer_norm_epsilon
        policy = self.dtype_policy

        def attention(rate, name):
            return SAMAttention(
                hidden_size, num_heads, rate, dtype=policy, name=name
            )

        def norm(name):
            return EdgeLayerNormalization(
                layer_norm_epsilon, dtype=policy, name=name
            )

        self.self_attention = attention(1, "self_attention")
        self.norm1 = norm("norm1")
        self.token_to_image = attention(
            attention_downsample_rate, "token_to_image"
        )
        self.norm2 = norm("norm2")
        self.mlp_fc1 = keras.layers.Dense(
            intermediate_dim, dtype=policy, name="mlp_fc1"
        )
        self.mlp_fc2 = keras.layers.Dense(
            hidden_size, dtype=policy, name="mlp_fc2"
        )
        self.norm3 = norm("norm3")
        self.image_to_token = attention(
            attention_downsample_rate, "image_to_token"
        )
        self.norm4 = norm("norm4")

    def build(
        self, queries_shape: Any, keys_shape: Any = None, *args: Any
    ) -> None:
        tokens = (None, None, self.hidden_size)
        for layer in (
            self.self_attention,
            self.token_to_image,
            self.image_to_token,
        ):
            layer.build(tokens)
        for layer in (self.norm1, self.norm2, self.norm3, self.norm4):
            layer.build(tokens)
        self.mlp_fc1.build(tokens)
        self.mlp_fc2.build((None, None, self.intermediate_dim))

    def call(self, queries: Any, keys: Any, query_pe: Any, key_pe: Any) -> Any:
        if self.skip_first_layer_pe:
            queries = self.self_attention(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attention(q, q, queries)
        queries = self.norm1(queries)
        q, k = queries + query_pe, keys + key_pe
        queries = self.norm2(queries + self.token_to_image(q, k, keys))
        hidden = keras.activations.get(self.activation)(self.mlp_fc1(queries))
        queries = self.norm3(queries + self.mlp_fc2(hidden))
        q, k = queries + query_pe, keys + key_pe
        keys = self.norm4(keys + self.image_to_token(k, q, queries))
        return queries, keys

    def compute_output_shape(
        self, queries_shape: Any, keys_shape: Any, *args: Any
    ) -> Any:
        return tuple(queries_shape), tuple(keys_shape)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "hidden_size": self.hidden_size,
            "num_heads": self.num_heads,
            "intermediate_dim": self.intermediate_dim,
            "attention_downsample_rate": self.attention_downsample_rate,
            "skip_first_layer_pe": self.skip_first_layer_pe,
            "activation": self.activation,
            "layer_norm_epsilon": self.layer_norm_epsilon,
        }
