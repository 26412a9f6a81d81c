"""Layers shared by the families, written for the edge.

Each is built from TFLite builtins that XNNPACK and the int16x8 quantizer
accept, and keeps every tensor at rank <= 4.
"""

import keras
from keras import ops

__all__ = ["EdgeLayerNormalization"]


@keras.saving.register_keras_serializable(package="edge_backbones")
class EdgeLayerNormalization(keras.layers.Layer):
    """Layer normalization over the last axis, as SUB/MUL/MEAN/RSQRT only.

    Keras' `LayerNormalization` lowers through `tf.nn.moments` and
    `batch_normalization` to SQUARED_DIFFERENCE and NEG, which the int16x8
    converter rejects ("not yet supported for op: 'NEG'") and which full-int8
    conversion silently leaves in float. Same maths, same weight names
    (`gamma`, `beta`), so checkpoints map one to one.
    """

    def __init__(self, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def build(self, input_shape):
        dim = input_shape[-1]
        self.gamma = self.add_weight(
            name="gamma", shape=(dim,), initializer="ones"
        )
        self.beta = self.add_weight(
            name="beta", shape=(dim,), initializer="zeros"
        )

    def call(self, x):
        mean = ops.mean(x, axis=-1, keepdims=True)
        centered = x - mean
        variance = ops.mean(centered * centered, axis=-1, keepdims=True)
        return centered * ops.rsqrt(variance + self.epsilon) * self.gamma + (
            self.beta
        )

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}
