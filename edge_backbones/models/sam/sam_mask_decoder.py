"""`SAMMaskDecoder`: Segment Anything's two-way transformer and mask heads."""

from typing import Any

import keras
from keras import ops

from edge_backbones.models.layers import EdgeLayerNormalization
from edge_backbones.models.sam.sam_layers import (
    SAMAttention,
    SAMFeedForward,
    SAMTwoWayBlock,
)

__all__ = ["SAMMaskDecoder"]

# SAM's final token norm is a default nn.LayerNorm, whatever the blocks use.
FINAL_NORM_EPSILON = 1e-5
# and its upscaling LayerNorm2d SamLayerNorm's default
UPSCALE_NORM_EPSILON = 1e-6


@keras.saving.register_keras_serializable(package="edge_backbones")
class SAMMaskDecoder(keras.layers.Layer):
    """Predicts masks and their IoU from image and prompt embeddings.

    Output tokens (one IoU token, `num_multimask_outputs + 1` mask tokens)
    are prepended to the sparse prompt embeddings; a two-way transformer
    lets them and the image embeddings (plus the dense prompt embeddings)
    attend to each other; the image side is upscaled 4x by two transposed
    convolutions and each mask token's hypernetwork MLP turns it into a
    per-pixel linear map. All `num_multimask_outputs + 1` masks and IoU
    predictions come out: index 0 is SAM's single-mask output, 1.. its
    multimask outputs (the choice is the caller's, so the graph is one).

    Call with `image_embeddings` (B, h, w, C), `prompt_dense_positional_
    embeddings` (1, h, w, C), `prompt_sparse_embeddings` (B, N, C) and
    `prompt_dense_embeddings` (B, h, w, C). Returns a dict: `masks`
    (B, 4h, 4w, M) low-resolution mask logits, channels last, and
    `iou_predictions` (B, M).

    Args:
        hidden_size: token width C.
        num_layers: two-way transformer blocks.
        intermediate_dim: hidden width of the blocks' MLP.
        num_heads: attention heads.
        embedding_dim: channels of the image embeddings (must equal
            `hidden_size`; kept for keras-hub's signature).
        num_multimask_outputs: masks of the multimask output (SAM: 3).
        iou_head_depth: Dense layers of the IoU head.
        iou_head_hidden_dim: hidden width of the IoU head.
        activation: activation of the blocks' MLP (SAM: relu).
        attention_downsample_rate: cross-attention narrows q/k/v by it.
        layer_norm_epsilon: epsilon of the blocks' layer norms.
    """

    def __init__(
        self,
        hidden_size: Any = 256,
        num_layers: Any = 2,
        intermediate_dim: Any = 2048,
        num_heads: Any = 8,
        embedding_dim: Any = 256,
        num_multimask_outputs: Any = 3,
        iou_head_depth: Any = 3,
        iou_head_hidden_dim: Any = 256,
        activation: Any = "relu",
        attention_downsample_rate: Any = 2,
        layer_norm_epsilon: Any = 1e-06,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if embedding_dim != hidden_size:
            raise ValueError(
                f"embedding_dim={embedding_dim} must equal hidden_size="
                f"{hidden_size}: SAM adds the image embeddings to tokens."
            )
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.intermediate_dim = intermediate_dim
        self.num_heads = num_heads
        self.embedding_dim = embedding_dim
        self.num_multimask_outputs = num_multimask_outputs
        self.iou_head_depth = iou_head_depth
        self.iou_head_hidden_dim = iou_head_hidden_dim
        self.activation = activation
        self.attention_downsample_rate = attention_downsample_rate
        self.layer_norm_epsilon = layer_norm_epsilon
        self.num_mask_tokens = num_multimask_outputs + 1
        policy = self.dtype_policy
        self.blocks = [
            SAMTwoWayBlock(
                hidden_size,
                num_heads,
                intermediate_dim,
                attention_downsample_rate,
                skip_first_layer_pe=(i == 0),
                activation=activation,
                layer_norm_epsilon=layer_norm_epsilon,
                dtype=policy,
                name=f"block{i}",
            )
            for i in range(num_layers)
        ]
        self.final_attention = SAMAttention(
            hidden_size,
            num_heads,
            attention_downsample_rate,
            dtype=policy,
            name="final_attention",
        )
        self.final_norm = EdgeLayerNormalization(
            FINAL_NORM_EPSILON, dtype=policy, name="final_norm"
        )
        self.upscale_conv1 = keras.layers.Conv2DTranspose(
            hidden_size // 4, 2, strides=2, dtype=policy, name="upscale_conv1"
        )
        self.upscale_norm = EdgeLayerNormalization(
            UPSCALE_NORM_EPSILON, dtype=policy, name="upscale_norm"
        )
        self.upscale_conv2 = keras.layers.Conv2DTranspose(
            hidden_size // 8, 2, strides=2, dtype=policy, name="upscale_conv2"
        )
        self.hypernetworks = [
            SAMFeedForward(
                hidden_size, hidden_size // 8, 3, dtype=policy, name=f"hyper{i}"
            )
            for i in range(self.num_mask_tokens)
        ]
        self.iou_head = SAMFeedForward(
            iou_head_hidden_dim,
            self.num_mask_tokens,
            iou_head_depth,
            dtype=policy,
            name="iou_head",
        )

    def build(self, *args: Any, **kwargs: Any) -> None:
        c = self.hidden_size
        self.iou_token = self.add_weight(name="iou_token", shape=(1, c))
        self.mask_tokens = self.add_weight(
            name="mask_tokens", shape=(self.num_mask_tokens, c)
        )
        tokens = (None, None, c)
        for block in self.blocks:
            block.build(tokens, tokens)
        self.final_attention.build(tokens)
        self.final_norm.build(tokens)
        self.upscale_conv1.build((None, None, None, c))
        self.upscale_norm.build((None, None, None, c // 4))
        self.upscale_conv2.build((None, None, None, c // 4))
        for mlp in self.hypernetworks:
            mlp.build((None, c))
        self.iou_head.build((None, c))

    def call(
        self,
        image_embeddings: Any,
        prompt_dense_positional_embeddings: Any,
        prompt_sparse_embeddings: Any,
        prompt_dense_embeddings: Any,
    ) -> Any:
        c = self.hidden_size
        _, h, w, _ = ops.shape(image_embeddings)
        sparse = prompt_sparse_embeddings
        output_tokens = ops.concatenate([self.iou_token, self.mask_tokens], 0)
        # (B, 1 + M, C): the tokens broadcast over the prompts' batch
        output_tokens = output_tokens[None] + ops.zeros_like(sparse[:, :1])
        tokens = ops.concatenate([output_tokens, sparse], axis=1)
        keys = ops.reshape(
            image_embeddings + prompt_dense_embeddings, (-1, h * w, c)
        )
        key_pe = ops.reshape(prompt_dense_positional_embeddings, (1, h * w, c))
        queries = tokens
        for block in self.blocks:
            queries, keys = block(queries, keys, tokens, key_pe)
        attended = self.final_attention(queries + tokens, keys + key_pe, keys)
        queries = self.final_norm(queries + attended)

        upscaled = ops.reshape(keys, (-1, h, w, c))
        upscaled = self.upscale_norm(self.upscale_conv1(upscaled))
        upscaled = keras.activations.gelu(upscaled, approximate=False)
        upscaled = self.upscale_conv2(upscaled)
        upscaled = keras.activations.gelu(upscaled, approximate=False)
        pixels = ops.reshape(upscaled, (-1, 16 * h * w, c // 8))
        # (B, C/8, M), concatenated rather than stacked: PACK is
        # shape plumbing to the static-graph checks
        hyper = ops.concatenate(
            [
                mlp(queries[:, 1 + i])[:, :, None]
                for i, mlp in enumerate(self.hypernetworks)
            ],
            axis=2,
        )
        masks = ops.matmul(pixels, hyper)
        masks = ops.reshape(masks, (-1, 4 * h, 4 * w, self.num_mask_tokens))
        return {
            "masks": masks,
            "iou_predictions": self.iou_head(queries[:, 0]),
        }

    def compute_output_shape(
        self, image_embeddings_shape: Any, *args: Any
    ) -> Any:
        batch, h, w, _ = image_embeddings_shape
        m = self.num_mask_tokens
        return {
            "masks": (batch, 4 * h if h else None, 4 * w if w else None, m),
            "iou_predictions": (batch, m),
        }

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "intermediate_dim": self.intermediate_dim,
            "num_heads": self.num_heads,
            "embedding_dim": self.embedding_dim,
            "num_multimask_outputs": self.num_multimask_outputs,
            "iou_head_depth": self.iou_head_depth,
            "iou_head_hidden_dim": self.iou_head_hidden_dim,
            "activation": self.activation,
            "attention_downsample_rate": self.attention_downsample_rate,
            "layer_norm_epsilon": self.layer_norm_epsilon,
        }
