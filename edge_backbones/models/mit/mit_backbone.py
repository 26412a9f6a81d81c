"""MiTBackbone: the Mix Transformer, SegFormer's hierarchical encoder."""

import keras
import numpy as np

from edge_backbones.models.backbone import Backbone, FeatureInfo
from edge_backbones.models.layers import EdgeLayerNormalization
from edge_backbones.models.mit.mit_layers import (
    LAYER_NORM_EPSILON,
    MiTAttention,
)

__all__ = ["MiTBackbone"]

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def _mit_block(x, hidden_dim, num_heads, sr_ratio, mlp_dim, drop_rate, name):
    """One encoder block on a (batch, H, W, C) map: attention, Mix-FFN."""

    def drop_path(y, suffix):
        if drop_rate == 0:
            return y
        # Dropout with one mask value per sample is stochastic depth; like
        # any Dropout it is the identity, and emits no ops, at inference.
        return keras.layers.Dropout(
            drop_rate, noise_shape=(None, 1, 1, 1), name=f"{name}_{suffix}"
        )(y)

    y = EdgeLayerNormalization(LAYER_NORM_EPSILON, name=f"{name}_norm1")(x)
    y = MiTAttention(hidden_dim, num_heads, sr_ratio, name=f"{name}_attention")(
        y
    )
    x = keras.layers.Add(name=f"{name}_add1")([x, drop_path(y, "drop_path1")])
    y = EdgeLayerNormalization(LAYER_NORM_EPSILON, name=f"{name}_norm2")(x)
    # Mix-FFN. The map stays (batch, H, W, C) throughout, so the 3x3
    # depthwise convolution needs no reshape to or from tokens.
    y = keras.layers.Dense(mlp_dim, name=f"{name}_mlp_fc1")(y)
    y = keras.layers.DepthwiseConv2D(
        3, padding="same", name=f"{name}_mlp_dwconv"
    )(y)
    # Exact (erf) GELU, as SegFormer trains with; converts to one GELU op.
    y = keras.layers.Activation("gelu", name=f"{name}_mlp_gelu")(y)
    y = keras.layers.Dense(hidden_dim, name=f"{name}_mlp_fc2")(y)
    return keras.layers.Add(name=f"{name}_add2")(
        [x, drop_path(y, "drop_path2")]
    )


def _check_per_stage(num_layers, **lists):
    for arg, value in lists.items():
        if value is None or len(value) != num_layers:
            raise ValueError(
                f"{arg} needs one entry per stage (num_layers={num_layers}); "
                f"received {arg}={value!r}."
            )


@keras.saving.register_keras_serializable(package="edge_backbones")
class MiTBackbone(Backbone):
    """The Mix Transformer (MiT) encoder of SegFormer.

    Each stage embeds overlapping patches with a strided convolution, runs
    transformer blocks (spatial-reduction attention + Mix-FFN with a 3x3
    depthwise convolution), and layer-normalizes its output, which is a
    pyramid level: `P1`..`P4` at strides 4, 8, 16, 32 for the standard
    configs. The model's own output is the deepest level; `pyramid_outputs`
    and `feature_extractor()` give them all.

    Feature maps stay (batch, height, width, channels) from stage to stage,
    spatial sizes are read from the input at call time, and the patch
    embedding pads explicitly like PyTorch's `Conv2d(padding=k // 2)`: any
    image size works (non-square too) and traces to a static graph, and
    Hugging Face SegFormer weights load one to one (`from_preset(folder)`).
    With the standard patch sizes and strides, level `i` has
    `ceil(size / stride_i)` positions per side.

    Args:
        depths: list of ints, transformer blocks per stage.
        num_layers: int, number of stages (pyramid levels).
        blockwise_num_heads: list of ints, attention heads per stage.
        blockwise_sr_ratios: list of ints, per stage, the kernel and stride of
            the convolution that reduces keys and values (1 = none).
        max_drop_path_rate: float, stochastic-depth rate of the last block;
            rates grow linearly from 0 over all blocks (training only).
        patch_sizes: list of ints, patch-embedding kernel size per stage.
        strides: list of ints, patch-embedding stride per stage.
        image_shape: tuple, input shape (height, width, channels); `None`
            dims accept any size.
        hidden_dims: list of ints, channels per stage.
        mlp_ratios: list of ints, Mix-FFN expansion per stage; `None` is 4
            for every stage (all published MiT models).
        include_rescaling: bool, whether the graph starts with
            `Rescaling(1 / 255)` and so takes 0-255 pixels (keras-cv's
            argument). When False the input is ImageNet-normalized; see
            `preprocessing`.
        input_tensor: optional Keras tensor to build on instead of a new
            `keras.Input`. Not serializable: `get_config()` records its shape
            as `image_shape`.

    Example:
    ```python
    backbone = MiTBackbone.from_preset("mit_b0", load_weights=False)
    features = backbone.feature_extractor()(np.ones((1, 384, 640, 3)))
    # {"P1": (1, 96, 160, 32), ..., "P4": (1, 12, 20, 256)}
    ```
    """

    hf_model_types = ("segformer",)

    def __init__(
        self,
        depths,
        num_layers,
        blockwise_num_heads,
        blockwise_sr_ratios,
        max_drop_path_rate,
        patch_sizes,
        strides,
        image_shape=(None, None, 3),
        hidden_dims=None,
        mlp_ratios=None,
        include_rescaling=False,
        input_tensor=None,
        **kwargs,
    ):
        if mlp_ratios is None:
            mlp_ratios = [4] * num_layers
        _check_per_stage(
            num_layers,
            depths=depths,
            blockwise_num_heads=blockwise_num_heads,
            blockwise_sr_ratios=blockwise_sr_ratios,
            patch_sizes=patch_sizes,
            strides=strides,
            hidden_dims=hidden_dims,
            mlp_ratios=mlp_ratios,
        )
        # === Functional model ===
        if input_tensor is None:
            images = keras.Input(shape=image_shape, name="images")
        else:
            images = input_tensor
            image_shape = tuple(input_tensor.shape[1:])
        x = images
        if include_rescaling:
            x = keras.layers.Rescaling(1 / 255, name="rescaling")(x)
        drop_rates = np.linspace(0.0, max_drop_path_rate, sum(depths))
        pyramid_outputs = {}
        feature_info = []
        total_stride = 1
        block_index = 0
        for i in range(num_layers):
            stage = f"stage{i + 1}"
            x = keras.layers.ZeroPadding2D(
                patch_sizes[i] // 2, name=f"{stage}_patch_embed_pad"
            )(x)
            x = keras.layers.Conv2D(
                hidden_dims[i],
                patch_sizes[i],
                strides=strides[i],
                padding="valid",
                name=f"{stage}_patch_embed_proj",
            )(x)
            x = EdgeLayerNormalization(
                LAYER_NORM_EPSILON, name=f"{stage}_patch_embed_norm"
            )(x)
            for j in range(depths[i]):
                x = _mit_block(
                    x,
                    hidden_dim=hidden_dims[i],
                    num_heads=blockwise_num_heads[i],
                    sr_ratio=blockwise_sr_ratios[i],
                    mlp_dim=hidden_dims[i] * mlp_ratios[i],
                    drop_rate=float(drop_rates[block_index]),
                    name=f"{stage}_block{j}",
                )
                block_index += 1
            x = EdgeLayerNormalization(
                LAYER_NORM_EPSILON, name=f"{stage}_norm"
            )(x)
            total_stride *= strides[i]
            pyramid_outputs[f"P{i + 1}"] = x
            feature_info.append(
                FeatureInfo(f"P{i + 1}", hidden_dims[i], total_stride)
            )
        super().__init__(inputs=images, outputs=x, **kwargs)
        self._set_pyramid(pyramid_outputs, feature_info)

        # === Config ===
        self.depths = depths
        self.num_layers = num_layers
        self.blockwise_num_heads = blockwise_num_heads
        self.blockwise_sr_ratios = blockwise_sr_ratios
        self.max_drop_path_rate = max_drop_path_rate
        self.patch_sizes = patch_sizes
        self.strides = strides
        self.image_shape = image_shape
        self.hidden_dims = hidden_dims
        self.mlp_ratios = mlp_ratios
        self.include_rescaling = include_rescaling

    def peak_activation_bytes(self, height, width):
        """Largest float32 tensor at batch 1: per stage, the attention
        scores (heads x tokens x tokens reduced by sr_ratio^2) or the MLP's
        hidden tokens."""
        largest, stride = 0, 1
        for i in range(self.num_layers):
            stride *= self.strides[i]
            rows, columns = -(-height // stride), -(-width // stride)
            sr = self.blockwise_sr_ratios[i]
            keys = -(-rows // sr) * -(-columns // sr)
            scores = self.blockwise_num_heads[i] * rows * columns * keys
            hidden = rows * columns * self.hidden_dims[i] * self.mlp_ratios[i]
            largest = max(largest, scores, hidden)
        return 4 * largest

    @property
    def preprocessing(self):
        """How 0-255 RGB pixels become this model's float input."""
        if self.include_rescaling:
            # The graph divides by 255 itself and normalizes no further.
            scale, mean, std = 1.0, [0.0] * 3, [1.0] * 3
        else:
            scale, mean, std = 1 / 255, IMAGENET_MEAN, IMAGENET_STD
        return {
            "color_order": "RGB",
            "resize": "stretch",
            "interpolation": "linear",
            "pixels_in_graph": False,
            "scale": scale,
            "mean": list(mean),
            "std": list(std),
        }

    def get_config(self):
        return {
            **super().get_config(),
            "depths": self.depths,
            "num_layers": self.num_layers,
            "blockwise_num_heads": self.blockwise_num_heads,
            "blockwise_sr_ratios": self.blockwise_sr_ratios,
            "max_drop_path_rate": self.max_drop_path_rate,
            "patch_sizes": self.patch_sizes,
            "strides": self.strides,
            "image_shape": self.image_shape,
            "hidden_dims": self.hidden_dims,
            "mlp_ratios": self.mlp_ratios,
            "include_rescaling": self.include_rescaling,
        }

    @classmethod
    def _from_hf_checkpoint(cls, path, hf_config, load_weights, **kwargs):
        from edge_backbones.models.mit import convert_segformer

        backbone = cls(
            **{**convert_segformer.convert_config(hf_config, path), **kwargs}
        )
        if load_weights:
            convert_segformer.load_weights(backbone, path)
        return backbone
