"""keras-cv's `MiTB0Backbone` .. `MiTB5Backbone` constructors.

Calling one returns a `MiTBackbone` built from the matching preset with
random weights, as keras-cv does (`isinstance(x, MiTBackbone)` holds; load
weights with `MiTBackbone.from_preset(...)`).
"""

from edge_backbones.models.mit.mit_backbone import MiTBackbone

__all__ = [
    "MiTB0Backbone",
    "MiTB1Backbone",
    "MiTB2Backbone",
    "MiTB3Backbone",
    "MiTB4Backbone",
    "MiTB5Backbone",
]

_DOCSTRING = """MiT-{size} backbone with random weights (keras-cv's alias).

    Args:
        include_rescaling: bool, whether the graph starts with
            `Rescaling(1 / 255)` and takes 0-255 pixels. Defaults to True.
        input_shape: tuple, (height, width, channels). Defaults to
            (224, 224, 3).
        input_tensor: optional Keras tensor to use as the model's input.
        **kwargs: any other `MiTBackbone` argument, overriding the
            `{preset}` preset's.

    Example:
    ```python
    backbone = {size_class}Backbone()
    deepest = backbone(tf.ones((8, 224, 224, 3)))
    ```
"""


class _MiTAlias(MiTBackbone):
    preset = None

    def __new__(
        cls,
        include_rescaling=True,
        input_shape=(224, 224, 3),
        input_tensor=None,
        **kwargs,
    ):
        # Returns a plain MiTBackbone, so Python skips __init__ and the
        # object saves and reloads as a MiTBackbone.
        return MiTBackbone.from_preset(
            cls.preset,
            load_weights=False,
            include_rescaling=include_rescaling,
            image_shape=tuple(input_shape),
            input_tensor=input_tensor,
            **kwargs,
        )


def _alias(size):
    name = f"MiT{size}Backbone"
    preset = f"mit_{size.lower()}"
    doc = _DOCSTRING.format(size=size, preset=preset, size_class=f"MiT{size}")
    return type(name, (_MiTAlias,), {"preset": preset, "__doc__": doc})


MiTB0Backbone = _alias("B0")
MiTB1Backbone = _alias("B1")
MiTB2Backbone = _alias("B2")
MiTB3Backbone = _alias("B3")
MiTB4Backbone = _alias("B4")
MiTB5Backbone = _alias("B5")
