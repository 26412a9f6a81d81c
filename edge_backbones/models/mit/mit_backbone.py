"""MiTBackbone: the Mix Transformer, SegFormer's hierarchical encoder."""

import dataclasses
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from edge_backbones.models.backbone import Backbone, FeatureInfo
from edge_backbones.models.layers import EdgeLayerNormalization
from edge_backbones.models.mit.mit_layers import (
    LAYER_NORM_EPSILON,
    MiTAttention,
)
from edge_backbones.models.mit.mit_presets import PREPROCESSING

__all__ = ["MiTBackbone"]


def _mit_block(
    x, hidden_dim, num_heads, sr_ratio, mlp_dim, drop_rate, name, dtype=None
):
    """One encoder block on a (batch, H, W, C) map: attention, Mix-FFN."""

    def drop_path(y, suffix):
        if drop_rate == 0:
            return y
        # Dropout with one mask value per sample is stochastic depth; like
        # any Dropout it is the identity, and emits no ops, at inference.
        return keras.layers.Dropout(
            drop_rate,
            noise_shape=(None, 1, 1, 1),
            dtype=dtype,
            name=f"{name}_{suffix}",
        )(y)

    y = EdgeLayerNormalization(
        LAYER_NORM_EPSILON, dtype=dtype, name=f"{name}_norm1"
    )(x)
    y = MiTAttention(
        hidden_dim, num_heads, sr_ratio, dtype=dtype, name=f"{name}_attention"
    )(y)
    x = keras.layers.Add(dtype=dtype, name=f"{name}_add1")(
        [x, drop_path(y, "drop_path1")]
    )
    y = EdgeLayerNormalization(
        LAYER_NORM_EPSILON, dtype=dtype, name=f"{name}_norm2"
    )(x)
    # Mix-FFN. The map stays (batch, H, W, C) throughout, so the 3x3
    # depthwise convolution needs no reshape to or from tokens.
    y = keras.layers.Dense(mlp_dim, dtype=dtype, name=f"{name}_mlp_fc1")(y)
    y = keras.layers.DepthwiseConv2D(
        3, padding="same", dtype=dtype, name=f"{name}_mlp_dwconv"
    )(y)
    # Exact (erf) GELU, as SegFormer trains with; converts to one GELU op.
    y = keras.layers.Activation("gelu", dtype=dtype, name=f"{name}_mlp_gelu")(y)
    y = keras.layers.Dense(hidden_dim, dtype=dtype, name=f"{name}_mlp_fc2")(y)
    return keras.layers.Add(dtype=dtype, name=f"{name}_add2")(
        [x, drop_path(y, "drop_path2")]
    )


# keras-hub 0.18 renamed five arguments; both spellings are accepted and
# get_config() echoes the 0.17 names (our presets, docs and every config we
# have written use them).
KERAS_HUB_RENAMED = {
    "depths": "layerwise_depths",
    "blockwise_num_heads": "layerwise_num_heads",
    "blockwise_sr_ratios": "layerwise_sr_ratios",
    "patch_sizes": "layerwise_patch_sizes",
    "strides": "layerwise_strides",
}


def _canonical_arguments(kwargs, **given):
    """{0.17 name: value} of the five renamed arguments.

    Pops keras-hub >= 0.18 spellings from `kwargs`; giving both spellings of
    one argument is an InputError (we would otherwise pick one silently).
    """
    from edge_backbones.errors import InputError

    values = {}
    for old, new in KERAS_HUB_RENAMED.items():
        value = given[old]
        if new in kwargs:
            renamed = kwargs.pop(new)
            if value is not None:
                raise InputError(
                    f"MiTBackbone received both {old}={value!r} and "
                    f"{new}={renamed!r}, two spellings of one argument "
                    f"(keras-hub 0.17 and >= 0.18); pass only one."
                )
            value = renamed
        if value is None:
            raise TypeError(
                f"MiTBackbone is missing {old!r} (keras-hub >= 0.18 "
                f"spells it {new!r}); give one of them."
            )
        values[old] = value
    return values


def _check_per_stage(num_layers, **lists):
    for arg, value in lists.items():
        if value is None or len(value) != num_layers:
            raise ValueError(
                f"{arg} needs one entry per stage (num_layers={num_layers}); "
                f"received {arg}={value!r}."
            )


@dataclasses.dataclass(frozen=True)
class _Stage:
    """One stage's settings, taken from the per-stage argument lists."""

    depth: int
    num_heads: int
    sr_ratio: int
    patch_size: int
    stride: int
    hidden_dim: int
    mlp_ratio: int


def _stages(num_layers, **lists):
    """The `_Stage`s, after checking every list has one entry per stage."""
    _check_per_stage(num_layers, **lists)
    return [
        _Stage(*values)
        for values in zip(
            lists["depths"],
            lists["blockwise_num_heads"],
            lists["blockwise_sr_ratios"],
            lists["patch_sizes"],
            lists["strides"],
            lists["hidden_dims"],
            lists["mlp_ratios"],
            strict=True,
        )
    ]


def _mit_stage(x, i, stage, drop_rates, dtype):
    """Overlapping patch embedding, the stage's blocks, its output norm.

    `drop_rates` yields each block's stochastic-depth rate in order.
    """
    name = f"stage{i + 1}"
    x = keras.layers.ZeroPadding2D(
        stage.patch_size // 2, dtype=dtype, name=f"{name}_patch_embed_pad"
    )(x)
    x = keras.layers.Conv2D(
        stage.hidden_dim,
        stage.patch_size,
        strides=stage.stride,
        padding="valid",
        dtype=dtype,
        name=f"{name}_patch_embed_proj",
    )(x)
    x = EdgeLayerNormalization(
        LAYER_NORM_EPSILON, dtype=dtype, name=f"{name}_patch_embed_norm"
    )(x)
    for j in range(stage.depth):
        x = _mit_block(
            x,
            hidden_dim=stage.hidden_dim,
            num_heads=stage.num_heads,
            sr_ratio=stage.sr_ratio,
            mlp_dim=stage.hidden_dim * stage.mlp_ratio,
            drop_rate=float(next(drop_rates)),
            dtype=dtype,
            name=f"{name}_block{j}",
        )
    return EdgeLayerNormalization(
        LAYER_NORM_EPSILON, dtype=dtype, name=f"{name}_norm"
    )(x)


def _mit_pyramid(images, stages, max_drop_path_rate, include_rescaling, dtype):
    """({"P1": ..., "P4": ...}, feature_info) of the stages on `images`."""
    x = images
    if include_rescaling:
        x = keras.layers.Rescaling(1 / 255, dtype=dtype, name="rescaling")(x)
    # stochastic depth grows linearly over all blocks, stage after stage
    blocks = sum(stage.depth for stage in stages)
    drop_rates = iter(np.linspace(0.0, max_drop_path_rate, blocks).tolist())
    pyramid_outputs = {}
    feature_info = []
    total_stride = 1
    for i, stage in enumerate(stages):
        x = _mit_stage(x, i, stage, drop_rates, dtype)
        total_stride *= stage.stride
        pyramid_outputs[f"P{i + 1}"] = x
        feature_info.append(
            FeatureInfo(f"P{i + 1}", stage.hidden_dim, total_stride)
        )
    return pyramid_outputs, feature_info


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

    The five per-stage lists take keras-hub 0.17's names (below) or
    keras-hub >= 0.18's (`layerwise_depths`, `layerwise_num_heads`,
    `layerwise_sr_ratios`, `layerwise_patch_sizes`, `layerwise_strides`);
    `get_config()` always echoes the 0.17 names, and configs written with
    either spelling load.

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
        depths: Sequence[int] | None = None,
        num_layers: int | None = None,
        blockwise_num_heads: Sequence[int] | None = None,
        blockwise_sr_ratios: Sequence[int] | None = None,
        max_drop_path_rate: float | None = None,
        patch_sizes: Sequence[int] | None = None,
        strides: Sequence[int] | None = None,
        image_shape: Sequence[int | None] = (None, None, 3),
        hidden_dims: Sequence[int] | None = None,
        mlp_ratios: Sequence[int] | None = None,
        include_rescaling: bool = False,
        input_tensor: Any = None,
        **kwargs: Any,
    ) -> None:
        renamed = _canonical_arguments(
            kwargs,
            depths=depths,
            blockwise_num_heads=blockwise_num_heads,
            blockwise_sr_ratios=blockwise_sr_ratios,
            patch_sizes=patch_sizes,
            strides=strides,
        )
        if num_layers is None or max_drop_path_rate is None:
            raise TypeError(
                "MiTBackbone needs num_layers and max_drop_path_rate; "
                f"received num_layers={num_layers!r}, "
                f"max_drop_path_rate={max_drop_path_rate!r}."
            )
        mlp_ratios = [4] * num_layers if mlp_ratios is None else mlp_ratios
        stages = _stages(
            num_layers,
            **renamed,
            hidden_dims=hidden_dims,
            mlp_ratios=mlp_ratios,
        )
        # Every layer gets the backbone's dtype policy (as in keras-hub).
        dtype = kwargs.get("dtype")
        # === Functional model ===
        if input_tensor is None:
            images = keras.Input(shape=image_shape, name="images")
        else:
            images = input_tensor
            image_shape = tuple(input_tensor.shape[1:])
        pyramid_outputs, feature_info = _mit_pyramid(
            images, stages, max_drop_path_rate, include_rescaling, dtype
        )
        outputs = pyramid_outputs[feature_info[-1].name]
        super().__init__(inputs=images, outputs=outputs, **kwargs)
        self._set_pyramid(pyramid_outputs, feature_info)
        # === Config === (the five renamed lists under their 0.17 names)
        for argument, value in renamed.items():
            setattr(self, argument, value)
        self.num_layers = num_layers
        self.max_drop_path_rate = max_drop_path_rate
        self.image_shape = image_shape
        # checked per stage by _stages above (None raised there)
        self.hidden_dims: Sequence[int] = hidden_dims  # type: ignore[assignment]
        self.mlp_ratios = mlp_ratios
        self.include_rescaling = include_rescaling

    def peak_activation_bytes(self, height: int, width: int) -> int:
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
    def preprocessing(self) -> dict[str, Any]:
        """How 0-255 RGB pixels become this model's float input."""
        spec = {
            **PREPROCESSING,
            "mean": list(PREPROCESSING["mean"]),
            "std": list(PREPROCESSING["std"]),
        }
        if self.include_rescaling:
            # The graph divides by 255 itself and normalizes no further.
            spec.update(scale=1.0, mean=[0.0] * 3, std=[1.0] * 3)
        return spec

    def get_config(self) -> dict[str, Any]:
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
