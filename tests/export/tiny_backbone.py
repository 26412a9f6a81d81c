"""A two-level toy backbone with the ops the real families lower to.

Conv patch embedding, `EdgeLayerNormalization`, single-head attention
(FULLY_CONNECTED + BATCH_MATMUL + SOFTMAX) and a GELU MLP, so the export
modes meet the same op mix as MiT / ViTDet at a fraction of the cost.
"""

import keras
from keras import ops

from edge_backbones.models.backbone import Backbone, FeatureInfo
from edge_backbones.models.layers import EdgeLayerNormalization


class _TinyBlock(keras.layers.Layer):
    def __init__(self, dim, **kwargs):
        super().__init__(**kwargs)
        self.dim = dim
        self.norm1 = EdgeLayerNormalization(name="norm1")
        self.qkv = keras.layers.Dense(3 * dim, name="qkv")
        self.proj = keras.layers.Dense(dim, name="proj")
        self.norm2 = EdgeLayerNormalization(name="norm2")
        self.fc1 = keras.layers.Dense(2 * dim, name="fc1")
        self.fc2 = keras.layers.Dense(dim, name="fc2")

    def build(self, input_shape):
        tokens = (input_shape[0], None, self.dim)
        self.norm1.build(tokens)
        self.qkv.build(tokens)
        self.proj.build(tokens)
        self.norm2.build(tokens)
        self.fc1.build(tokens)
        self.fc2.build((input_shape[0], None, 2 * self.dim))

    def call(self, x):
        # spatial size from the traced input, per the Backbone contract
        _, height, width, _ = ops.shape(x)
        tokens = ops.reshape(x, (-1, height * width, self.dim))
        q, k, v = ops.split(self.qkv(self.norm1(tokens)), 3, axis=-1)
        scores = ops.matmul(q, ops.transpose(k, (0, 2, 1))) * self.dim**-0.5
        tokens = tokens + self.proj(ops.matmul(ops.softmax(scores), v))
        hidden = keras.activations.gelu(self.fc1(self.norm2(tokens)))
        tokens = tokens + self.fc2(hidden)
        return ops.reshape(tokens, (-1, height, width, self.dim))

    def get_config(self):
        return {**super().get_config(), "dim": self.dim}


class TinyBackbone(Backbone):
    """P1 (stride 4, `dim` channels) and P2 (stride 8, 2 * `dim`)."""

    def __init__(self, dim=8, image_shape=(32, 32, 3), **kwargs):
        images = keras.Input(image_shape, name="images")
        x = keras.layers.Conv2D(dim, 4, strides=4, name="embed1")(images)
        p1 = _TinyBlock(dim, name="block1")(x)
        x = keras.layers.Conv2D(2 * dim, 2, strides=2, name="embed2")(p1)
        p2 = _TinyBlock(2 * dim, name="block2")(x)
        super().__init__(images, p2, **kwargs)
        self._set_pyramid(
            {"P1": p1, "P2": p2},
            [FeatureInfo("P1", dim, 4), FeatureInfo("P2", 2 * dim, 8)],
        )
        self.dim = dim
        self.image_shape = tuple(image_shape)

    @property
    def preprocessing(self):
        return {
            "color_order": "RGB",
            "resize": "stretch",
            "interpolation": "linear",
            "pixels_in_graph": False,
            "scale": 1 / 255,
            "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225],
        }

    def get_config(self):
        return {
            **super().get_config(),
            "dim": self.dim,
            "image_shape": self.image_shape,
        }
