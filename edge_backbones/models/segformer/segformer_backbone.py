"""SegFormerBackbone: MiT's pyramid fused by SegFormer's all-MLP decoder."""

import keras

from edge_backbones.models.segformer.segformer_layers import ResizeLike

__all__ = ["SegFormerBackbone"]

# PyTorch's nn.BatchNorm2d defaults, which SegFormer's decoder keeps
BATCH_NORM_EPSILON = 1e-5
BATCH_NORM_MOMENTUM = 0.9


def _decode(pyramid, projection_filters, dtype):
    """The fused stride-4 map of SegFormer's decode head (before the
    classifier): each level projected to `projection_filters` channels,
    upsampled to the first level's size, concatenated deepest first, then
    fused by a 1x1 convolution, batch norm and ReLU."""
    levels = list(pyramid.values())
    quarter = levels[0]
    upsampled = []
    for i, level in enumerate(levels):
        # projecting before upsampling: the dense runs on the small map
        x = keras.layers.Dense(
            projection_filters, dtype=dtype, name=f"linear_c{i + 1}"
        )(level)
        x = ResizeLike(dtype=dtype, name=f"linear_c{i + 1}_resize")(x, quarter)
        upsampled.append(x)
    x = keras.layers.Concatenate(axis=-1, dtype=dtype, name="linear_concat")(
        upsampled[::-1]
    )
    x = keras.layers.Conv2D(
        projection_filters, 1, use_bias=False, dtype=dtype, name="linear_fuse"
    )(x)
    x = keras.layers.BatchNormalization(
        epsilon=BATCH_NORM_EPSILON,
        momentum=BATCH_NORM_MOMENTUM,
        dtype=dtype,
        name="linear_fuse_bn",
    )(x)
    return keras.layers.ReLU(dtype=dtype, name="linear_fuse_relu")(x)


@keras.saving.register_keras_serializable(package="edge_backbones")
class SegFormerBackbone(keras.Model):
    """SegFormer's encoder and all-MLP decoder, up to the classifier.

    Composes an image encoder (a `MiTBackbone`) through its
    `pyramid_outputs` only: every level gets a linear projection to
    `projection_filters` channels, is resized bilinearly (half-pixel
    centers, as PyTorch's `align_corners=False`) to the first level's
    size, and the levels, deepest first, are concatenated and fused by a
    bias-free 1x1 convolution, batch norm and ReLU. The output is that
    fused map at the first level's stride (4 for MiT), as in keras-hub's
    `SegFormerBackbone` and transformers' `SegformerDecodeHead`.

    Like the encoder, every size is read at call time: any input size
    (non-square too) works and a trace at a fixed size is static.

    Args:
        image_encoder: a `MiTBackbone` (anything with `inputs` and an
            ordered `pyramid_outputs` dict whose first level is the finest).
        projection_filters: int, channels of the projections and of the
            fused map (transformers' `decoder_hidden_size`: 256 for B0/B1,
            768 for B2-B5).

    Example:
    ```python
    encoder = MiTBackbone.from_preset("mit_b0", load_weights=False)
    backbone = SegFormerBackbone(image_encoder=encoder, projection_filters=256)
    fused = backbone(np.ones((1, 512, 512, 3)))  # (1, 128, 128, 256)
    ```
    """

    def __init__(self, image_encoder, projection_filters=256, **kwargs):
        dtype = kwargs.pop("dtype", None) or image_encoder.dtype_policy
        fused = _decode(
            image_encoder.pyramid_outputs, projection_filters, dtype
        )
        super().__init__(inputs=image_encoder.input, outputs=fused, **kwargs)
        self.image_encoder = image_encoder
        self.projection_filters = projection_filters

    @property
    def stride(self):
        """The output's stride: the encoder's finest level's."""
        return self.image_encoder.feature_info[0].stride

    @property
    def preprocessing(self):
        """How 0-255 RGB pixels become this model's input: the encoder's."""
        return self.image_encoder.preprocessing

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "image_encoder": keras.saving.serialize_keras_object(
                self.image_encoder
            ),
            "projection_filters": self.projection_filters,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        encoder = config["image_encoder"]
        if isinstance(encoder, dict):
            config["image_encoder"] = keras.saving.deserialize_keras_object(
                encoder
            )
        return cls(**config)
