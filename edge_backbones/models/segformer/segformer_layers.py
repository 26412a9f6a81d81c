"""The one layer SegFormer's all-MLP decoder needs beyond Keras' own."""

import keras
from keras import ops

__all__ = ["ClassMap", "ResizeLike", "class_dtype"]


@keras.saving.register_keras_serializable(package="edge_backbones")
class ResizeLike(keras.layers.Layer):
    """Resizes a map bilinearly to the height and width of a reference map.

    The size is read from the reference's static shape at call time, so a
    trace at a fixed input size gives one RESIZE_BILINEAR with a constant
    size (and no op at all when the sizes already match). Keras' bilinear
    resize samples at half-pixel centers without antialiasing: PyTorch's
    `interpolate(mode="bilinear", align_corners=False)` when upsampling,
    which is all SegFormer's decoder does.
    """

    def call(self, x, reference):
        size = tuple(ops.shape(reference)[1:3])
        if tuple(ops.shape(x)[1:3]) == size:
            return x
        return ops.image.resize(
            x, size, interpolation="bilinear", antialias=False
        )

    def compute_output_shape(self, x_shape, reference_shape):
        return (x_shape[0], *reference_shape[1:3], x_shape[-1])


# the widest class id a uint8 class map holds
UINT8_CLASSES = 256


@keras.saving.register_keras_serializable(package="edge_backbones")
class ClassMap(keras.layers.Layer):
    """Per pixel, the class of the highest logit: (batch, H, W) integers.

    uint8 when there are at most 256 classes (a quarter of int32's bytes,
    what a renderer indexes a palette with), int32 otherwise. With
    `reference` given, the logits are first resized bilinearly to its
    height and width, as transformers' `post_process_semantic_segmentation`
    does before its argmax; otherwise the map has the logits' size.
    """

    def call(self, logits, reference=None):
        if reference is not None:
            logits = ResizeLike(dtype=self.dtype_policy)(logits, reference)
        return ops.cast(_argmax(logits), class_dtype(logits.shape[-1]))

    def compute_output_shape(self, logits_shape, reference_shape=None):
        source = logits_shape if reference_shape is None else reference_shape
        return (logits_shape[0], *source[1:3])

    def compute_output_spec(self, logits, reference=None):
        shape = self.compute_output_shape(
            logits.shape, None if reference is None else reference.shape
        )
        return keras.KerasTensor(shape, dtype=class_dtype(logits.shape[-1]))


def class_dtype(num_classes):
    """The integer type of a class map of `num_classes` classes."""
    return "uint8" if num_classes <= UINT8_CLASSES else "int32"


def _argmax(logits):
    """The last axis' argmax as one ARG_MAX op. Keras' TensorFlow argmax
    adds a BitwiseAnd (its tie rule for -0.0), which has no TFLite
    builtin; ties between exact logits are immaterial to a class map."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.math.argmax(logits, axis=-1, output_type="int32")
    return ops.argmax(logits, axis=-1)
