"""Bring your own model: any Keras or tf-keras model through `export()`.

`ForeignModel` gives the export pipeline what it reads from our backbones:

- a serving model, `images` (1, H, W, C) -> {level: tensor}, as a Keras 3
  functional model. A tf-keras (Keras 2) model or a SavedModel signature is
  wrapped in one Keras 3 layer that calls it on TensorFlow tensors, so the
  same SavedModel writer, converter, verification and metadata apply;
- `feature_info` measured at the export size (channels, and the stride as
  input size / level size);
- `preprocessing`, which a foreign model does not state: the caller gives
  it (default: raw 0-255 RGB, as `keras.applications` models with
  preprocessing in the graph take);
- `graph_notes`: what its converted graph holds that our backbones are
  written to avoid (float ops left in an int8 graph, shape plumbing,
  rank > 4), so a slow int8 artifact says why.

Level names are the output dict's keys, or, for list outputs, the output
layer names of a functional model; when neither gives usable names
(duplicates, '/' in a layer path, a subclassed model), an InputError asks
for `level_names` (`--level-names`).
"""

import dataclasses
import functools
import os
import re

from edge_backbones._compat import keras as keras_compat
from edge_backbones.core.preprocessing import (
    IMAGENET_PREPROCESSING,
    validate_preprocessing,
)
from edge_backbones.errors import CheckpointError, InputError, require

__all__ = ["ForeignModel", "PREPROCESSING", "as_foreign", "is_foreign"]

_RAW = {
    "color_order": "RGB",
    "resize": "stretch",
    "interpolation": "linear",
    "pixels_in_graph": False,
    "scale": 1.0,
    "mean": [0.0, 0.0, 0.0],
    "std": [1.0, 1.0, 1.0],
}
# (pixels * scale - mean) / std, named after what the model expects
PREPROCESSING = {
    "raw": _RAW,
    "unit": {**_RAW, "scale": 1 / 255},
    "symmetric": {**_RAW, "scale": 1 / 127.5, "mean": [1.0, 1.0, 1.0]},
    "imagenet": IMAGENET_PREPROCESSING,
}
_LEVEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
# ops our backbones' rewrites keep out of the graph
_SHAPE_PLUMBING = ("SHAPE", "GATHER", "REDUCE_PROD", "PACK", "UNPACK")
_INT16X8_REJECTS = ("NEG", "SQUARED_DIFFERENCE")
_HANDOFFS = ("QUANTIZE", "DEQUANTIZE")


def _is_tf_keras(obj):
    # tf-keras (Keras 2) objects, never imported just to check
    return any(
        c.__module__.split(".")[0] == "tf_keras" for c in type(obj).mro()
    )


def _is_keras3(obj):
    keras = require("keras", "export")
    return isinstance(obj, keras.Model)


def is_foreign(model):
    """Whether `export()` should treat `model` as bring-your-own."""
    if isinstance(model, ForeignModel):
        return True
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if os.path.isdir(path):
            return os.path.isfile(os.path.join(path, "saved_model.pb"))
        return path.endswith((".h5", ".hdf5", ".keras"))
    if _is_tf_keras(model):
        return True
    from edge_backbones.models.backbone import Backbone

    return _is_keras3(model) and not isinstance(model, Backbone)


def as_foreign(model, image_size):
    """A ForeignModel built at `image_size`, or None for our own models."""
    if not is_foreign(model):
        return None
    if not isinstance(model, ForeignModel):
        model = ForeignModel(model)
    return model.at_size(image_size)


@dataclasses.dataclass
class ForeignModel:
    """A model we did not build, ready for `edge_backbones.export()`.

    Args:
        model: a Keras 3 model, a tf-keras model, or a path to a `.keras` /
            `.h5` file or a SavedModel folder with a `serving_default`
            signature (tf-keras SavedModels load either way).
        level_names: names of the outputs, in output order (a list), or a
            {output key: level name} dict renaming dict outputs. Needed
            when the outputs carry no usable names.
        preprocessing: how 0-255 RGB pixels become the input: a name from
            `PREPROCESSING` ("raw", "unit", "symmetric", "imagenet") or a
            full spec dict (see `Backbone.preprocessing`).
        name: the artifacts' name stem (default: the model's name or the
            file's stem).
    """

    model: object
    level_names: object = None
    preprocessing: object = "raw"
    name: str | None = None

    def __post_init__(self):
        spec = self.preprocessing
        if isinstance(spec, str):
            if spec not in PREPROCESSING:
                raise InputError(
                    f"preprocessing={spec!r} is not one of "
                    f"{sorted(PREPROCESSING)}; or give a full spec dict."
                )
            spec = PREPROCESSING[spec]
        self.preprocessing = validate_preprocessing(dict(spec))
        self._loaded, self.format = _load(self.model)
        self.weights = (
            os.path.abspath(os.fspath(self.model))
            if isinstance(self.model, (str, os.PathLike))
            else "in-memory"
        )
        self.name = self.name or _default_name(self.model, self._loaded)
        self._serving = None
        self._levels = None

    # ---- what export() reads ----------------------------------------------

    def at_size(self, image_size):
        """Traces the model at (1, H, W, C); names and measures its levels."""
        keras = require("keras", "export")
        from edge_backbones.exporter.graph import INPUT_NAME

        height, width = image_size
        channels = _input_channels(self._loaded, self.format)
        images = keras.Input(
            (height, width, channels), batch_size=1, name=INPUT_NAME
        )
        outputs = _apply(self._loaded, self.format, images)
        named = _name_levels(outputs, self.level_names, self._loaded)
        self._levels = _measure(named, height, width)
        ordered = {info.name: named[info.name] for info in self._levels}
        self._serving = keras.Model(images, ordered, name="serving")
        return self

    @property
    def feature_info(self):
        return list(self._levels)

    def serving_model(self, image_size, out_features=None):
        """The Keras 3 serving model; see `graph.serving_model`."""
        if self._serving is None or tuple(
            self._serving.inputs[0].shape[1:3]
        ) != tuple(image_size):
            self.at_size(image_size)
        if not out_features:
            return self._serving
        keras = require("keras", "export")
        outputs = {n: self._serving.output[n] for n in out_features}
        return keras.Model(self._serving.input, outputs, name="serving")

    def get_config(self):
        return {
            "source": self.weights,
            "format": self.format,
            "class_name": type(self._loaded).__name__,
            "levels": [info.as_dict() for info in self._levels or ()],
        }

    def peak_activation_bytes(self, height, width):
        """A lower bound (the largest output level): the graph is opaque."""
        from edge_backbones.models.backbone import largest_level_bytes

        return largest_level_bytes(self._levels, height, width)

    def count_params(self):
        if hasattr(self._loaded, "count_params"):
            return int(self._loaded.count_params())
        return int(sum(v.shape.num_elements() for v in self._loaded.variables))

    def _flatten_layers(self, include_self=True, recursive=True):
        # what int8_mixed's float layer types and names are looked up in
        return keras_compat.flatten_layers(
            self._loaded, include_self=include_self, recursive=recursive
        )

    def graph_notes(self, plan, content, log):
        """Ops our rewrites avoid, found in this converted graph; logged."""
        from edge_backbones.runtime.model_file import read_model_file

        parsed = read_model_file(content)
        histogram = parsed.op_histogram
        notes = {}
        if plan.needs_calibration:
            floats = _float_ops(parsed)
            if floats:
                notes["float_ops"] = floats
                log(
                    f"{plan.mode}: this model's graph keeps {floats} in "
                    "float between (de)quantize hand-offs, which makes int8"
                    " slow; our backbones are rewritten to avoid them (try "
                    "--layer-report, or the cpu target)."
                )
        plumbing = {
            op: histogram[op] for op in _SHAPE_PLUMBING if op in histogram
        }
        if plumbing:
            notes["shape_plumbing"] = plumbing
            log(
                f"{plan.mode}: shape plumbing {plumbing} left in the graph "
                "(sizes computed at run time); fixed-size layers avoid it."
            )
        rejected = [op for op in _INT16X8_REJECTS if op in histogram]
        if rejected and plan.needs_calibration:
            notes["int16x8_rejects"] = rejected
            log(
                f"{plan.mode}: {rejected} in the graph (Keras' "
                "LayerNormalization lowers to them); the int16x8 converter "
                "rejects them and full int8 may leave them in float. Our "
                "backbones use EdgeLayerNormalization instead."
            )
        if parsed.max_tensor_rank > 4:
            notes["max_tensor_rank"] = parsed.max_tensor_rank
            log(
                f"{plan.mode}: tensors of rank {parsed.max_tensor_rank}; "
                "GPU delegates and many NPUs stop at rank 4."
            )
        return notes


def _float_ops(parsed):
    counts = {}
    for op, (_, outputs) in zip(parsed.ops, parsed.op_io, strict=True):
        if op in _HANDOFFS:
            continue
        if any(
            parsed.tensor_types[t] in ("float32", "float16") for t in outputs
        ):
            counts[op] = counts.get(op, 0) + 1
    return counts


# ---- loading ----------------------------------------------------------------


def _load(model):
    """(loaded object, format) for every accepted source."""
    if isinstance(model, ForeignModel):
        return model._loaded, model.format
    if _is_tf_keras(model):
        return model, "tf_keras"
    if not isinstance(model, (str, os.PathLike)):
        return model, "keras"
    path = os.fspath(model)
    if os.path.isfile(os.path.join(path, "keras_metadata.pb")):
        # a tf-keras SavedModel: its Keras metadata keeps the output names
        tf_keras = require("tf_keras", "export")
        return tf_keras.models.load_model(path, compile=False), "tf_keras"
    if os.path.isdir(path):
        return _load_saved_model(path), "saved_model"
    if not os.path.isfile(path):
        raise CheckpointError(
            f"{path!r} is no file or folder. Level names and preprocessing "
            "options apply to models of your own: a .keras or .h5 file, or "
            "a SavedModel folder."
        )
    if path.endswith(".keras"):
        keras = require("keras", "export")
        return keras.saving.load_model(path, compile=False), "keras"
    tf_keras = require("tf_keras", "export")
    try:
        return tf_keras.models.load_model(path, compile=False), "tf_keras"
    except (OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path!r} is not a tf-keras (Keras 2) .h5 model ({exc}). Keras "
            "3 models load from .keras files."
        ) from exc


def _load_saved_model(path):
    tf = require("tensorflow", "export")
    loaded = tf.saved_model.load(path)
    if "serving_default" not in loaded.signatures:
        raise CheckpointError(
            f"{path!r} is a SavedModel without a 'serving_default' signature"
            f" (it has {sorted(loaded.signatures)}). Export it with one, "
            "e.g. model.export(path) in Keras 3 or model.save(path) in "
            "tf-keras."
        )
    return loaded


def _default_name(model, loaded):
    if isinstance(model, (str, os.PathLike)):
        stem = os.path.basename(os.path.normpath(os.fspath(model)))
        return os.path.splitext(stem)[0]
    return getattr(loaded, "name", None) or type(loaded).__name__


def _signature(loaded):
    function = loaded.signatures["serving_default"]
    ((name, spec),) = function.structured_input_signature[1].items()
    return function, name, spec


def _input_channels(loaded, fmt):
    if fmt == "saved_model":
        shape = _signature(loaded)[2].shape
    else:
        inputs = getattr(loaded, "inputs", None)
        if not inputs:  # a subclassed model that was never called
            return 3
        shape = inputs[0].shape
    if len(shape) != 4:
        raise InputError(
            f"The model's input has shape {shape}; export takes models with "
            "one image input (batch, height, width, channels)."
        )
    return shape[-1] or 3


def _apply(loaded, fmt, images):
    """The model's outputs on the fixed-size Keras 3 input `images`."""
    keras = require("keras", "export")
    if fmt == "keras":
        try:
            # the model's own layers on the new input: a functional model
            # built for another size (or any size) traces at this one
            cloned = keras.models.clone_model(
                loaded, input_tensors=images, clone_function=lambda layer: layer
            )
            return cloned.output
        except (ValueError, TypeError):  # subclassed: call it
            return loaded(images, training=False)
    if fmt == "tf_keras":
        call = _tensorflow_call_class()(
            lambda x: loaded(x, training=False), loaded
        )
    else:
        function, name, spec = _signature(loaded)
        _check_signature_size(spec, images)
        call = _tensorflow_call_class()(lambda x: function(**{name: x}), loaded)
    return call(images)


def _check_signature_size(spec, images):
    wanted = tuple(spec.shape[1:3])
    given = tuple(images.shape[1:3])
    if any(
        w is not None and w != g for w, g in zip(wanted, given, strict=True)
    ):
        raise InputError(
            f"The SavedModel's serving signature takes {wanted} images; "
            f"export it at that size (image_size={wanted[0]}x{wanted[1]}), "
            f"not {given[0]}x{given[1]}."
        )


@functools.cache
def _tensorflow_call_class():
    keras = require("keras", "export")

    class TensorFlowCall(keras.layers.Layer):
        """One Keras 3 layer running a TensorFlow callable (tf-keras model,
        SavedModel signature). `trackable` keeps its variables reachable, so
        the SavedModel writer saves them."""

        def __init__(self, function, trackable, **kwargs):
            super().__init__(name="foreign_model", **kwargs)
            self._function = function
            self._trackable = trackable

        def call(self, images):
            return self._function(images)

    return TensorFlowCall


# ---- levels -----------------------------------------------------------------


def _name_levels(outputs, level_names, loaded):
    """{level name: output tensor} in output order."""
    if isinstance(outputs, dict):
        if level_names is None:
            named = dict(outputs)
        elif isinstance(level_names, dict):
            unknown = sorted(set(level_names) - set(outputs))
            if unknown:
                raise InputError(
                    f"level_names renames {unknown}, which are not outputs "
                    f"of this model ({sorted(outputs)})."
                )
            named = {level_names.get(k, k): v for k, v in outputs.items()}
        else:
            raise InputError(
                f"This model returns a dict ({sorted(outputs)}); name its "
                "levels by renaming keys: level_names={key: level}, or keep "
                "its keys."
            )
    else:
        tensors = (
            list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
        )
        names = _sequence_names(tensors, level_names, loaded)
        named = dict(zip(names, tensors, strict=True))
    bad = [
        n for n in named if not isinstance(n, str) or not _LEVEL_NAME.match(n)
    ]
    if bad or len(named) == 0:
        raise InputError(
            f"Output names {bad or list(named)} cannot name pyramid levels "
            "(they become SignatureDef keys and the runtime's keys: letters,"
            " digits, '_', '.', '-'). Give level_names (--level-names), "
            "e.g. ['P3', 'P4']."
        )
    return named


def _sequence_names(tensors, level_names, loaded):
    if level_names is not None:
        names = list(level_names)
        if len(names) != len(tensors) or len(set(names)) != len(names):
            raise InputError(
                f"level_names={names} must name each of the model's "
                f"{len(tensors)} outputs once, in output order."
            )
        return names
    inferred = list(getattr(loaded, "output_names", None) or [])
    if len(inferred) == len(tensors) and len(set(inferred)) == len(inferred):
        return inferred
    raise InputError(
        f"This model returns {len(tensors)} unnamed output(s); name them as"
        " pyramid levels in output order: level_names=['P3', 'P4', ...] "
        "(--level-names P3,P4)."
    )


def _measure(named, height, width):
    """FeatureInfo per level, shallowest (smallest stride) first."""
    from edge_backbones.models.backbone import FeatureInfo

    levels = []
    for name, tensor in named.items():
        shape = tuple(tensor.shape)
        if len(shape) != 4 or not shape[1] or not shape[2]:
            raise InputError(
                f"Output {name!r} has shape {shape}, not a (1, h, w, "
                "channels) feature map; export takes feature extractors "
                "(cut the model before its head)."
            )
        stride = max(round(height / shape[1]), round(width / shape[2]), 1)
        levels.append(FeatureInfo(name, int(shape[3]), int(stride)))
    return sorted(levels, key=lambda info: info.stride)
