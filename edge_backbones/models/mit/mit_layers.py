"""MiT's efficient self-attention, written for a static 4-D edge graph."""

from typing import Any

import keras
from keras import ops

from edge_backbones.models.layers import (
    EdgeLayerNormalization,
    softmax_float32,
)

__all__ = ["MiTAttention"]

# PyTorch's nn.LayerNorm default, which every SegFormer norm uses (the
# config's `layer_norm_eps` is not read by the encoder).
LAYER_NORM_EPSILON = 1e-5


@keras.saving.register_keras_serializable(package="edge_backbones")
class MiTAttention(keras.layers.Layer):
    """Multi-head self-attention with spatially reduced keys and values.

    Takes and returns a (batch, height, width, channels) map. The queries
    attend to every position; keys and values come from the map reduced by a
    `sr_ratio` x `sr_ratio` strided convolution (PVT / SegFormer), so the
    attention matrix is (H*W) x (H*W / sr_ratio**2).

    The spatial size is read from the input's shape at call time, so any
    height and width work (not only square token grids) and a trace at a
    fixed size gives constant reshapes: no SHAPE/GATHER ops. Heads are a
    reshape to (batch, H*W, heads, head_dim) and a transpose, so no tensor
    exceeds rank 4.

    Args:
        hidden_dim: int, channels in and out.
        num_heads: int, attention heads; must divide `hidden_dim`.
        sr_ratio: int, kernel and stride of the key/value reduction; 1 turns
            it off.
    """

    def __init__(
        self, hidden_dim: int, num_heads: int, sr_ratio: int = 1, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if hidden_dim % num_heads:
            raise ValueError(
                f"hidden_dim={hidden_dim} is not divisible by num_heads="
                f"{num_heads}; pick a head count that divides it."
            )
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.sr_ratio = sr_ratio
        self.head_dim = hidden_dim // num_heads
        self.scale = self.head_dim**-0.5
        self.query = keras.layers.Dense(
            hidden_dim, dtype=self.dtype_policy, name="query"
        )
        self.key = keras.layers.Dense(
            hidden_dim, dtype=self.dtype_policy, name="key"
        )
        self.value = keras.layers.Dense(
            hidden_dim, dtype=self.dtype_policy, name="value"
        )
        self.proj = keras.layers.Dense(
            hidden_dim, dtype=self.dtype_policy, name="proj"
        )
        if sr_ratio > 1:
            self.reduction = keras.layers.Conv2D(
                hidden_dim,
                sr_ratio,
                strides=sr_ratio,
                dtype=self.dtype_policy,
                name="reduction",
            )
            self.reduction_norm = EdgeLayerNormalization(
                LAYER_NORM_EPSILON,
                dtype=self.dtype_policy,
                name="reduction_norm",
            )

    def build(self, input_shape: Any) -> None:
        self.query.build(input_shape)
        self.proj.build(input_shape)
        kv_shape = input_shape
        if self.sr_ratio > 1:
            self.reduction.build(input_shape)
            kv_shape = self.reduction.compute_output_shape(input_shape)
            self.reduction_norm.build(kv_shape)
        self.key.build(kv_shape)
        self.value.build(kv_shape)

    def _heads(self, x, perm):
        batch, height, width, _ = ops.shape(x)
        x = ops.reshape(
            x, (batch, height * width, self.num_heads, self.head_dim)
        )
        return ops.transpose(x, perm)

    def call(self, x: Any) -> Any:
        batch, height, width, channels = ops.shape(x)
        # Scaling the queries costs H*W*C multiplies instead of the
        # attention matrix's H*W*N'.
        q = self._heads(self.query(x) * self.scale, (0, 2, 1, 3))
        kv = x
        if self.sr_ratio > 1:
            kv = self.reduction_norm(self.reduction(x))
        # Keys go straight to (batch, heads, head_dim, N'): one transpose
        # instead of a transpose of the transposed heads.
        k = self._heads(self.key(kv), (0, 2, 3, 1))
        v = self._heads(self.value(kv), (0, 2, 1, 3))
        attention = softmax_float32(ops.matmul(q, k), self.compute_dtype)
        out = ops.transpose(ops.matmul(attention, v), (0, 2, 1, 3))
        out = ops.reshape(out, (batch, height, width, channels))
        return self.proj(out)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "hidden_dim": self.hidden_dim,
            "num_heads": self.num_heads,
            "sr_ratio": self.sr_ratio,
        }
