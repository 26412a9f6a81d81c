"""`ViTDetBackbone`: Segment Anything's image encoder as a Keras 3 model."""

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import keras

from edge_backbones.models.backbone import Backbone, FeatureInfo
from edge_backbones.models.layers import EdgeLayerNormalization
from edge_backbones.models.vit_det.vit_det_layers import (
    ViTDetAttention,
    ViTDetPositionEmbedding,
    ViTDetWindowPartition,
    ViTDetWindowUnpartition,
)
from edge_backbones.models.vit_det.vit_det_presets import PREPROCESSING

__all__ = ["ViTDetBackbone"]

# SAM's neck LayerNorm2d has a fixed epsilon, whatever the blocks use.
NECK_EPSILON = 1e-6


def _checked_image_shape(image_shape):
    image_shape = tuple(image_shape)
    if (
        len(image_shape) != 3
        or image_shape[0] is None
        or image_shape[1] is None
    ):
        raise ValueError(
            "ViTDetBackbone stores its position tables for "
            "image_shape=(height, width, channels), so height and width "
            f"must be given; received image_shape={image_shape}. SAM "
            "uses (1024, 1024, 3)."
        )
    return image_shape


@dataclasses.dataclass(frozen=True)
class _BlockSpec:
    """What every transformer block of one backbone shares."""

    hidden_size: int
    intermediate_dim: int
    num_heads: int
    use_bias: bool
    use_rel_pos: bool
    window_size: int
    layer_norm_epsilon: float
    dtype: object = None


def _patch_embedding(images, patch_size, use_abs_pos, grid, block):
    x = keras.layers.Conv2D(
        block.hidden_size,
        patch_size,
        strides=patch_size,
        dtype=block.dtype,
        name="patch_embedding",
    )(images)
    if use_abs_pos:
        x = ViTDetPositionEmbedding(
            grid, dtype=block.dtype, name="position_embedding"
        )(x)
    return x


def _attention(x, i, block, global_grid):
    """Norm, (windowed) attention; `global_grid` None for windowed blocks."""
    dtype, window = block.dtype, block.window_size
    x = EdgeLayerNormalization(
        epsilon=block.layer_norm_epsilon, dtype=dtype, name=f"block{i}_norm1"
    )(x)
    tokens = x
    if global_grid is None:
        x = ViTDetWindowPartition(
            window, dtype=dtype, name=f"block{i}_window_partition"
        )(x)
    x = ViTDetAttention(
        block.num_heads,
        use_bias=block.use_bias,
        use_rel_pos=block.use_rel_pos,
        rel_pos_size=global_grid or (window, window),
        dtype=dtype,
        name=f"block{i}_attention",
    )(x)
    if global_grid is None:
        x = ViTDetWindowUnpartition(
            window, dtype=dtype, name=f"block{i}_window_unpartition"
        )([x, tokens])
    return x


def _vit_block(x, i, block, global_grid):
    dtype = block.dtype
    shortcut = x
    x = _attention(x, i, block, global_grid)
    x = keras.layers.Add(dtype=dtype, name=f"block{i}_attention_residual")(
        [shortcut, x]
    )
    shortcut = x
    x = EdgeLayerNormalization(
        epsilon=block.layer_norm_epsilon, dtype=dtype, name=f"block{i}_norm2"
    )(x)
    x = keras.layers.Dense(
        block.intermediate_dim, dtype=dtype, name=f"block{i}_mlp_fc1"
    )(x)
    x = keras.layers.Activation("gelu", dtype=dtype, name=f"block{i}_mlp_gelu")(
        x
    )
    x = keras.layers.Dense(
        block.hidden_size, dtype=dtype, name=f"block{i}_mlp_fc2"
    )(x)
    return keras.layers.Add(dtype=dtype, name=f"block{i}_mlp_residual")(
        [shortcut, x]
    )


def _neck(x, channels, dtype):
    """SAM's neck: 1x1 conv -> LayerNorm2d -> 3x3 conv -> LayerNorm2d."""
    x = keras.layers.Conv2D(
        channels, 1, use_bias=False, dtype=dtype, name="neck_conv1"
    )(x)
    x = EdgeLayerNormalization(
        epsilon=NECK_EPSILON, dtype=dtype, name="neck_norm1"
    )(x)
    x = keras.layers.Conv2D(
        channels,
        3,
        padding="same",
        use_bias=False,
        dtype=dtype,
        name="neck_conv2",
    )(x)
    return EdgeLayerNormalization(
        epsilon=NECK_EPSILON, dtype=dtype, name="neck_norm2"
    )(x)


@keras.saving.register_keras_serializable(package="edge_backbones")
class ViTDetBackbone(Backbone):
    """ViTDet image encoder with SAM's neck (arXiv:2304.02643, 2203.16527).

    A plain ViT on 16x16 patches (absolute position embeddings, windowed
    attention blocks with a few global ones, decomposed relative position
    biases) followed by SAM's neck: 1x1 conv (no bias) -> LayerNorm2d ->
    3x3 conv (no bias) -> LayerNorm2d. The model's output is the neck
    output, at stride `patch_size`.

    The input is already normalized (see `preprocessing`): unlike keras-hub,
    the ImageNet mean/std is not in the graph, so the exported model's input
    contract is the same for every family.

    Pyramid: one level. keras-hub's ViTDetBackbone names no pyramid output,
    so the level follows the FPN convention (level k has stride 2^k): "P4"
    for SAM's 16-pixel patches, in general P{round(log2(patch_size))};
    `feature_info` states the exact stride and channels.

    Args:
        hidden_size: token width of the transformer blocks.
        num_layers: number of transformer blocks.
        intermediate_dim: hidden width of each block's MLP.
        num_heads: attention heads per block.
        global_attention_layer_indices: blocks (0-based) that attend over
            the whole token grid; the others attend within windows.
            Indices beyond `num_layers` are ignored.
        image_shape: (height, width, channels) the position embeddings and
            global relative-position tables are stored for (SAM: 1024x1024).
            The model runs on any size divisible by `patch_size`; then the
            tables are interpolated (bicubic / linear, constant-folded on
            export). Height and width may differ. It is also the model's
            static input shape, so Keras' own `export()` traces at it;
            calls at other sizes are still accepted. Defaults to SAM's
            (1024, 1024, 3); keras-hub's (None, None, 3) default has no
            size to store the tables for.
        patch_size: patch (and output stride) size.
        num_output_channels: channels of the neck output.
        use_bias: whether the query/key/value projection has a bias.
        use_abs_pos: whether to add absolute position embeddings.
        use_rel_pos: whether attention adds relative position biases.
        window_size: window side (in tokens) of the windowed blocks.
        layer_norm_epsilon: epsilon of the blocks' layer norms.

    Example:
    ```python
    model = ViTDetBackbone(
        image_shape=(16, 16, 3),
        patch_size=2,
        hidden_size=4,
        num_layers=2,
        global_attention_layer_indices=[2, 5, 8, 11],
        intermediate_dim=4 * 4,
        num_heads=2,
        num_output_channels=2,
        window_size=2,
    )
    model(np.ones((2, 224, 224, 3), dtype="float32"))  # (2, 112, 112, 2)
    ```
    """

    hf_model_types = ("sam", "sam_vision_model")

    def __init__(
        self,
        hidden_size: int,
        num_layers: int,
        intermediate_dim: int,
        num_heads: int,
        global_attention_layer_indices: Sequence[int],
        image_shape: Sequence[int] = (1024, 1024, 3),
        patch_size: int = 16,
        num_output_channels: int = 256,
        use_bias: bool = True,
        use_abs_pos: bool = True,
        use_rel_pos: bool = True,
        window_size: int = 14,
        layer_norm_epsilon: float = 1e-6,
        **kwargs: Any,
    ) -> None:
        image_shape = _checked_image_shape(image_shape)
        grid = (image_shape[0] // patch_size, image_shape[1] // patch_size)
        global_attention_layer_indices = list(global_attention_layer_indices)
        block = _BlockSpec(
            hidden_size,
            intermediate_dim,
            num_heads,
            use_bias,
            use_rel_pos,
            window_size,
            layer_norm_epsilon,
            # Every layer gets the backbone's dtype policy (as in keras-hub).
            dtype=kwargs.get("dtype"),
        )
        # === Functional model === A static input, so that Keras' own export
        # traces at this size; other sizes still run (`_accept_any_size`).
        images = keras.Input(image_shape, name="images")
        x = _patch_embedding(images, patch_size, use_abs_pos, grid, block)
        for i in range(num_layers):
            windowed = i not in global_attention_layer_indices
            x = _vit_block(x, i, block, None if windowed else grid)
        x = _neck(x, num_output_channels, block.dtype)
        # Keras would derive "vi_t_det_backbone" from the class name.
        kwargs.setdefault("name", "vit_det_backbone")
        super().__init__(inputs=images, outputs=x, **kwargs)
        self._accept_any_size()
        level = f"P{round(math.log2(patch_size))}"
        info = FeatureInfo(level, num_output_channels, patch_size)
        self._set_pyramid({level: x}, [info])
        # === Config ===
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.intermediate_dim = intermediate_dim
        self.num_heads = num_heads
        self.global_attention_layer_indices = global_attention_layer_indices
        self.image_shape = image_shape
        self.patch_size = patch_size
        self.num_output_channels = num_output_channels
        self.use_bias = use_bias
        self.use_abs_pos = use_abs_pos
        self.use_rel_pos = use_rel_pos
        self.window_size = window_size
        self.layer_norm_epsilon = layer_norm_epsilon

    def peak_activation_bytes(self, height: int, width: int) -> int:
        """Largest float32 tensor at batch 1: the global blocks' attention
        scores (heads x tokens^2), windowed scores, or the MLP's hidden
        tokens."""
        rows = -(-height // self.patch_size)
        columns = -(-width // self.patch_size)
        tokens = rows * columns
        window = self.window_size or max(rows, columns)
        windows = -(-rows // window) * -(-columns // window)
        scores = self.num_heads * windows * window**4
        if self.global_attention_layer_indices:
            scores = max(scores, self.num_heads * tokens**2)
        return 4 * max(scores, tokens * self.intermediate_dim)

    @property
    def preprocessing(self) -> dict[str, Any]:
        """SAM's: longest side resized, padded bottom/right, ImageNet norm."""
        return {
            **PREPROCESSING,
            "mean": list(PREPROCESSING["mean"]),
            "std": list(PREPROCESSING["std"]),
        }

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "intermediate_dim": self.intermediate_dim,
            "num_heads": self.num_heads,
            "global_attention_layer_indices": (
                self.global_attention_layer_indices
            ),
            "image_shape": self.image_shape,
            "patch_size": self.patch_size,
            "num_output_channels": self.num_output_channels,
            "use_bias": self.use_bias,
            "use_abs_pos": self.use_abs_pos,
            "use_rel_pos": self.use_rel_pos,
            "window_size": self.window_size,
            "layer_norm_epsilon": self.layer_norm_epsilon,
        }

    @classmethod
    def _from_hf_checkpoint(cls, path, hf_config, load_weights, **kwargs):
        """Builds from a Hugging Face `SamModel` / `SamVisionModel` folder.

        `kwargs` override the architecture read from config.json. An
        `image_shape` override stores the position tables for that size,
        resized from the checkpoint's once at load time (the same maths the
        layers apply at call time, so outputs agree either way).
        """
        from edge_backbones.models.vit_det import convert_sam

        checkpoint = convert_sam.convert_config(hf_config, path)
        backbone = cls(**{**checkpoint, **kwargs})
        if load_weights:
            convert_sam.load_weights(backbone, path, checkpoint["image_shape"])
        return backbone
