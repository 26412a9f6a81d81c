"""The `Backbone` base: pyramid outputs, `feature_info`, presets, loading.

Every family (`mit/`, `vit_det/`) subclasses `Backbone` as a Keras functional
model and follows one contract:

- `pyramid_outputs` maps level names to Keras tensors and `feature_info`
  states each level's channels and stride; the same names become the
  SignatureDef output keys of every exported model and the runtime's keys.
- Layers read spatial sizes from the static shape of their input at call time
  (`keras.ops.shape`), never from the constructor's `image_shape`. So one
  backbone can be traced again at batch 1 and any fixed size for export, and
  that graph is static: no SHAPE/GATHER/PACK plumbing.
- `get_config()` echoes every constructor argument; `from_config` is
  `cls(**config)`.
"""

import dataclasses
import importlib
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import keras

from edge_backbones._compat import keras as keras_compat
from edge_backbones.atomic_io import staged_directory
from edge_backbones.core.preprocessing import validate_preprocessing
from edge_backbones.core.suggest import suggest

if TYPE_CHECKING:
    from typing_extensions import Self
from edge_backbones.errors import (
    CheckpointError,
    InputError,
    UnknownPresetError,
    WeightsNotFoundError,
)

__all__ = [
    "DEFAULT_INPUT_SIZE",
    "Backbone",
    "FeatureInfo",
    "from_preset",
    "largest_level_bytes",
    "list_presets",
    "register_preset_aliases",
    "load_keras_preset_weights",
    "register_presets",
    "save_keras_preset",
    "suggest",
    "weight_folders",
]

# Families whose import registers their presets; imported on first lookup so
# that this module never pulls in a family it does not need.
_FAMILY_MODULES = ("edge_backbones.models.mit", "edge_backbones.models.vit_det")
# preset name -> {"class": Backbone subclass, "config": {}, "metadata": {}}
_PRESETS: dict[str, dict[str, Any]] = {}
# other ecosystems' name -> our preset name: the same architecture and the
# same weights lookup, kept out of `Backbone.presets` so that each model is
# listed (and built by the registry-driven tests) once
_ALIASES: dict[str, str] = {}
# Backbone subclasses that can load a foreign (Hugging Face) checkpoint.
_FAMILIES: list[type["Backbone"]] = []

# Said when a preset's weights are missing, by family: keras-cv users expect
# its weightless presets to build random weights silently; ours never do.
_KERAS_CV_NOTE = {
    "MiTBackbone": (
        "(keras-cv's 'mit_b0' has no weights and builds a random model; "
        "here every MiT preset names trained weights, and random weights "
        "are built only when asked for with load_weights=False.)\n"
    ),
}

KERAS_CONFIG_FILE = "config.json"
KERAS_WEIGHTS_FILE = "model.weights.h5"
# the export size of what is not a preset (folders, backbones, your models)
DEFAULT_INPUT_SIZE = (512, 512)


@dataclasses.dataclass(frozen=True)
class FeatureInfo:
    """One pyramid level: its output name, channel count and stride."""

    name: str
    channels: int
    stride: int

    @property
    def reduction(self) -> int:
        """timm's name for the stride."""
        return self.stride

    def as_dict(self) -> dict[str, str | int]:
        """{"name", "channels", "stride"}, as the exported metadata lists it."""
        return {
            "name": self.name,
            "channels": self.channels,
            "stride": self.stride,
        }


class _classproperty:
    def __init__(self, fget: Callable[[Any], Any]) -> None:
        self.fget = fget

    def __get__(self, instance: object, owner: type) -> Any:
        return self.fget(owner)


def _check_preset(cls, name, preset):
    """ValueError unless `preset` carries what callers read from it."""
    metadata = preset.get("metadata", {})
    size = metadata.get("image_size")
    if (
        not isinstance(preset.get("config"), dict)
        or not isinstance(preset.get("preprocessing"), dict)
        or "description" not in metadata
        or not (isinstance(size, (list, tuple)) and len(size) == 2)
    ):
        raise ValueError(
            f"{cls.__name__} preset {name!r} needs a 'config' dict, a "
            "'preprocessing' dict and 'metadata' with a 'description' and "
            f"its natural 'image_size' [height, width]; got keys "
            f"{sorted(preset)} and metadata {metadata!r}."
        )
    # the spec the runtime reads, complete: no key left to a default
    validate_preprocessing(dict(preset["preprocessing"]))


def register_presets(
    cls: type["Backbone"], presets: Mapping[str, Mapping[str, Any]]
) -> None:
    """Registers `presets` (name -> {"config", "metadata", "preprocessing"})
    for `cls`; see a family's `*_presets.py`.

    Raises:
        ValueError: a malformed preset, or a name another class registered
            (a bug in the family, not a user error).
    """
    for name, preset in presets.items():
        _check_preset(cls, name, preset)
        registered = _PRESETS.get(name)
        if registered is not None and registered["class"] is not cls:
            raise ValueError(
                f"Preset {name!r} is registered twice: by "
                f"{registered['class'].__name__} and {cls.__name__}."
            )
        _PRESETS[name] = {"class": cls, **preset}
    if cls not in _FAMILIES:
        _FAMILIES.append(cls)


def register_preset_aliases(aliases: Mapping[str, str]) -> None:
    """Registers `aliases` (name -> registered preset name): the names other
    libraries' documentation uses for one of our presets.

    Raises:
        ValueError: an alias of an unregistered preset, or one taken (a bug
            in the family, not a user error).
    """
    for alias, name in aliases.items():
        if name not in _PRESETS:
            raise ValueError(
                f"Alias {alias!r} names {name!r}, which is not a registered "
                "preset; register the preset first."
            )
        if alias in _PRESETS or _ALIASES.get(alias, name) != name:
            raise ValueError(
                f"Alias {alias!r} is already a preset or another alias."
            )
        _ALIASES[alias] = name


def _canonical(preset):
    """The registered name `preset` stands for (itself unless an alias)."""
    return _ALIASES.get(preset, preset)


def _ensure_registered():
    for module in _FAMILY_MODULES:
        importlib.import_module(module)


def list_presets() -> list[str]:
    """All preset names, across families."""
    _ensure_registered()
    return sorted(_PRESETS)


def from_preset(
    preset: str, load_weights: bool | None = True, **kwargs: Any
) -> "Backbone":
    """Builds any family's backbone from a preset name or a local folder.

    Raises:
        UnknownPresetError: neither a preset name nor a folder.
        CheckpointError: a checkpoint folder that cannot be loaded.
        WeightsNotFoundError: the preset's weights are not on this disk.
    """
    return Backbone.from_preset(preset, load_weights=load_weights, **kwargs)


def _hub_cache_dir():
    """The Hugging Face hub cache, resolved as huggingface_hub does."""
    if "HF_HUB_CACHE" in os.environ:
        return os.environ["HF_HUB_CACHE"]
    cache = os.environ.get(
        "XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache")
    )
    home = os.environ.get("HF_HOME", os.path.join(cache, "huggingface"))
    return os.path.join(home, "hub")


def local_weight_candidates(preset: str) -> list[str]:
    """Folders where the weights of `preset` may already be on disk.

    `$EDGE_BACKBONES_WEIGHTS/<preset>/` first, then every snapshot of the
    preset's Hugging Face repository in the local hub cache. Nothing is
    downloaded: this only looks.
    """
    return weight_folders(preset, _PRESETS[preset]["metadata"].get("hf_repo"))


def weight_folders(preset: str, repo: str | None = None) -> list[str]:
    """Where the weights of any model's preset `preset` may be on disk:
    `$EDGE_BACKBONES_WEIGHTS/<preset>/`, then the local hub cache's
    snapshots of the Hugging Face repository `repo` (if given)."""
    root = os.environ.get(
        "EDGE_BACKBONES_WEIGHTS",
        os.path.join(os.path.expanduser("~"), ".cache", "edge_backbones"),
    )
    candidates = [os.path.join(root, preset)]
    if repo:
        snapshots = os.path.join(
            _hub_cache_dir(), "models--" + repo.replace("/", "--"), "snapshots"
        )
        if os.path.isdir(snapshots):
            candidates += [
                os.path.join(snapshots, rev)
                for rev in sorted(os.listdir(snapshots))
            ]
        else:
            candidates.append(snapshots)
    return candidates


def _is_checkpoint_folder(path):
    return os.path.isfile(os.path.join(path, KERAS_CONFIG_FILE))


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _in_pyramid_order(picked, names, argument, value):
    if not picked:
        raise InputError(
            f"{argument}={value!r} picks no level; give at least one of "
            f"{names}, or None for all of them."
        )
    if len(set(picked)) != len(picked):
        raise InputError(
            f"{argument}={value!r} picks a level twice ({picked}); "
            "list each level once."
        )
    ordered = [n for n in names if n in picked]
    if picked != ordered:
        raise InputError(
            f"{argument}={value!r} is not in pyramid order (shallowest "
            f"first); write the same levels as {ordered} (Hugging Face "
            "refuses reordered selections too)."
        )
    return picked


def _checked_indices(out_indices, names):
    count = len(names)
    if not isinstance(out_indices, (list, tuple)):
        raise InputError(
            f"out_indices={out_indices!r} must be a list or tuple of level "
            f"indices, e.g. [{count - 1}] for the deepest level or "
            f"{list(range(-2, 0))} for the last two (this backbone has "
            f"levels 0..{count - 1}: {names})."
        )
    for index in out_indices:
        # bool is an int subclass; True would silently mean level 1
        if isinstance(index, bool) or not isinstance(index, int):
            raise InputError(
                f"out_indices={list(out_indices)} has {index!r}, which is "
                f"not an int level index (0..{count - 1} or -{count}..-1)."
            )
        if not -count <= index < count:
            raise InputError(
                f"out_indices={list(out_indices)} has {index}, but this "
                f"backbone has levels 0..{count - 1} ({names})."
            )
    positive = [index % count for index in out_indices]
    picked = [names[i] for i in positive]
    _in_pyramid_order(picked, names, "out_indices", list(out_indices))
    return positive


def _checked_features(out_features, names):
    if not isinstance(out_features, (list, tuple)):
        raise InputError(
            f"out_features={out_features!r} must be a list of level names "
            f"such as {names[-1:]}; this backbone has {names}."
        )
    unknown = [n for n in out_features if n not in names]
    if unknown:
        raise InputError(
            f"out_features={list(out_features)} names unknown level(s) "
            f"{unknown}; this backbone has {names}."
        )
    return _in_pyramid_order(
        list(out_features), names, "out_features", list(out_features)
    )


class ModelInputs(list):
    """`Backbone.inputs`: a one-element list Keras' trees read as its tensor.

    keras-hub documents `keras.Model(inputs=backbone.inputs,
    outputs=backbone.pyramid_outputs)`. With a plain list, that model
    expects `[images]` and warns when called on one array. Registered as a
    tree node that rebuilds to the bare tensor, the new model's input
    structure is the backbone's own (one tensor), while indexing
    (`backbone.inputs[0]`) works as on any list.
    """


def _register_model_inputs():
    try:
        import optree
    except ImportError:  # other tree backends: Keras only warns
        return
    optree.register_pytree_node(
        ModelInputs,
        lambda inputs: (list(inputs), None, None),
        lambda _, children: children[0] if len(children) == 1 else children,
        namespace="keras",
    )


_register_model_inputs()


def _weights_not_found(preset, entry, candidates):
    target = entry["class"]
    looked = "\n  ".join(candidates)
    repo = entry["metadata"].get("hf_repo", "its checkpoint")
    return WeightsNotFoundError(
        f"Preset {preset!r} is the trained checkpoint {repo!r} "
        f"({entry['metadata']['description']}), and load_weights=True "
        "(the default) asked for its weights, which are not on this "
        f"disk (nothing is downloaded). Looked in:\n  {looked}\n"
        f"{_KERAS_CV_NOTE.get(target.__name__, '')}"
        f"Fix: put the Hugging Face checkpoint {repo!r} (config.json + "
        f"model.safetensors) in the first folder, or load a folder "
        f"directly with {target.__name__}.from_preset('/path/to/folder'),"
        f" or build the architecture with random weights: "
        f"from_preset({preset!r}, load_weights=False)."
    )


def largest_level_bytes(
    feature_info: Iterable[FeatureInfo], height: int, width: int
) -> int:
    """Bytes of the largest float32 pyramid level at batch 1."""
    return max(
        -(-height // info.stride) * -(-width // info.stride)
        * info.channels * 4
        for info in feature_info
    )  # fmt: skip


class Backbone(keras.Model):
    """Base class of the package's backbones (a Keras functional model).

    Subclasses build their graph, call `super().__init__(inputs, outputs)`,
    then `_set_pyramid(pyramid_outputs, feature_info)`.
    """

    @_classproperty
    def presets(cls) -> dict[str, dict[str, Any]]:
        """The presets this class (or one of its subclasses) can build."""
        _ensure_registered()
        return {
            name: entry
            for name, entry in _PRESETS.items()
            if issubclass(entry["class"], cls)
        }

    @_classproperty
    def preset_aliases(cls) -> dict[str, str]:
        """Other libraries' names for presets of this class (alias -> our
        name); `from_preset` takes them. Not in `presets`: one model, one
        entry."""
        _ensure_registered()
        presets = cls.presets
        return {
            alias: name
            for alias, name in sorted(_ALIASES.items())
            if name in presets
        }

    def __init__(self, *args: Any, dtype: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # keras.Model drops `dtype` for functional models; the families
        # give it to every layer and it is recorded here for get_config().
        if dtype is not None:
            self.dtype_policy = keras.dtype_policies.get(dtype)

    @property
    def inputs(self) -> ModelInputs:
        """The model's input tensors; one, also read as the bare tensor."""
        return ModelInputs(super().inputs)

    def _accept_any_size(self):
        """Lets calls on any height and width through Keras' input check.

        For families whose weights fit every size (the layers read sizes at
        call time) but whose static input carries the size they were built
        for; the check on rank and channels stays.
        """
        shape = self.inputs[0].shape
        self.input_spec = [
            keras.InputSpec(
                ndim=len(shape), axes={-1: shape[-1]}, name=self.inputs[0].name
            )
        ]

    def _set_pyramid(self, pyramid_outputs, feature_info):
        names = [info.name for info in feature_info]
        if list(pyramid_outputs) != names:
            raise ValueError(
                f"pyramid_outputs {list(pyramid_outputs)} and feature_info "
                f"{names} must name the same levels in the same order."
            )
        self.pyramid_outputs = dict(pyramid_outputs)
        self._feature_info = tuple(feature_info)

    @property
    def feature_info(self) -> list[FeatureInfo]:
        """Per level: name, channels, stride (shallowest first)."""
        return list(self._feature_info)

    @property
    def preprocessing(self) -> dict[str, Any]:
        """How 0-255 RGB pixels become this model's float input.

        `input = (pixels * scale - mean) / std` after resizing per `resize`
        ("stretch" to the input size, or "longest_side_pad": keep the aspect
        ratio and pad bottom/right, as Segment Anything does).
        """
        raise NotImplementedError

    def peak_activation_bytes(self, height: int, width: int) -> int:
        """The largest float32 activation at batch 1 for this input size.

        Export checks it against free memory before running anything.
        This default, the largest pyramid level, is a lower bound;
        families with attention estimate their score matrices, which
        dominate at large sizes.
        """
        return largest_level_bytes(self._feature_info, height, width)

    def select_features(
        self,
        out_indices: Sequence[int] | None = None,
        out_features: Sequence[str] | None = None,
    ) -> list[str]:
        """Names of the levels picked by `out_indices` and/or `out_features`.

        Follows Hugging Face's `verify_out_features_out_indices`:
        `out_indices` (a list or tuple of ints, 0 = shallowest, negative
        counts from the deepest, as in timm) and `out_features` (a list or
        tuple of level names, as in `AutoBackbone`) must be non-empty, free
        of duplicates and in pyramid order; given both, they must pick the
        same levels. Anything else is an InputError. Neither picks every
        level (Hugging Face's default is the last stage only). timm's
        "an int n means the last n levels" is not supported: an int is
        refused with the list to write instead.

        Raises:
            InputError: an empty, duplicated, out-of-order or unknown
                pick, or two that disagree.
        """
        names = [info.name for info in self._feature_info]
        by_index = None
        if out_indices is not None:
            by_index = [names[i] for i in _checked_indices(out_indices, names)]
        by_name = None
        if out_features is not None:
            by_name = _checked_features(out_features, names)
        if by_index is not None and by_name is not None and by_index != by_name:
            raise InputError(
                f"out_indices={list(out_indices or ())} picks {by_index} but "
                f"out_features={list(out_features or ())}: give one, or make "
                "them agree."
            )
        picked = by_name if by_name is not None else by_index
        return names if picked is None else picked

    def feature_extractor(
        self,
        out_indices: Sequence[int] | None = None,
        out_features: Sequence[str] | None = None,
    ) -> keras.Model:
        """A Keras model from this backbone's input to a dict of levels.

        Raises:
            InputError: levels picked as `select_features` refuses them.
        """
        names = self.select_features(out_indices, out_features)
        # `self.input` (one tensor, not a list) so that calling the
        # extractor on one array matches its input structure.
        extractor = keras.Model(
            self.input,
            {name: self.pyramid_outputs[name] for name in names},
            name=f"{self.name}_features",
        )
        if keras_compat.has_manual_input_spec(self):  # see _accept_any_size
            extractor.input_spec = self.input_spec
        return extractor

    def get_config(self) -> dict[str, Any]:
        # Subclasses return their constructor arguments; Functional's config
        # (the layer graph) is not ours to serialize.
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self._policy_for_config()),
        }

    def _policy_for_config(self):
        """The dtype policy, or a DTypePolicyMap once layers are quantized.

        As in keras-hub: `quantize("int8")` sets quantized policies layer by
        layer; recorded per layer path, the config rebuilds those layers
        quantized (every family passes `dtype` to every layer), so a
        quantized backbone round-trips through `.keras` and presets.
        """
        policy = self.dtype_policy
        if isinstance(policy, keras.dtype_policies.DTypePolicyMap):
            return policy
        quantized = keras.dtype_policies.DTypePolicyMap(default_policy=policy)
        for layer in keras_compat.flatten_layers(self, include_self=False):
            if layer.quantization_mode is not None:
                quantized[layer.path] = layer.dtype_policy
        return quantized if len(quantized) else policy

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Self":
        return cls(**config)

    # ---- checkpoints -------------------------------------------------------

    @classmethod
    def _from_hf_checkpoint(cls, path, hf_config, load_weights, **kwargs):
        """Families that read Hugging Face checkpoints override this."""
        raise NotImplementedError

    hf_model_types: tuple[str, ...] = ()

    @classmethod
    def natural_input_size(cls, preset: object) -> tuple[int, int]:
        """(height, width) a model is best exported at.

        For a preset name, the resolution its weights were trained at (its
        metadata's `image_size`: `mit_b0` 224, the ADE20K presets 512 or
        640, the Cityscapes ones and SAM 1024). Anything else (a folder, a
        backbone object, a model of your own) gets `DEFAULT_INPUT_SIZE`.
        """
        if isinstance(preset, str) and not os.path.isdir(preset):
            _ensure_registered()
            entry = _PRESETS.get(_canonical(preset))
            if entry is not None:
                height, width = entry["metadata"]["image_size"]
                return int(height), int(width)
        return DEFAULT_INPUT_SIZE

    @classmethod
    def from_preset(
        cls, preset: str, load_weights: bool | None = True, **kwargs: Any
    ) -> "Self":
        """Builds a backbone from a preset name or a local checkpoint folder.

        `preset` is a registered name (`Backbone.presets`), a folder holding a
        Hugging Face checkpoint (`config.json` + `model.safetensors`) or a
        folder written by `save_to_preset`, or another library's name for
        one of them (`Backbone.preset_aliases`: keras-cv's
        `mit_b0_imagenet` is `mit_b0`). Nothing is downloaded: a preset's
        weights load only if they are already on this disk; otherwise pass
        `load_weights=False` for the architecture with random weights
        (`None`, keras-cv's default, loads the preset's weights: every
        preset here has them). `kwargs` override the preset's config (e.g.
        `image_shape`).

        Raises:
            UnknownPresetError: neither a preset name nor a folder, or a
                preset of another family.
            CheckpointError: a file, or a checkpoint folder that cannot be
                loaded.
            WeightsNotFoundError: the preset's weights are not on this
                disk.
        """
        if os.path.isdir(preset):
            return cls._from_folder(preset, load_weights, **kwargs)
        if os.path.exists(preset):
            raise CheckpointError(
                f"{preset!r} is a file; from_preset takes a preset name or a "
                "folder holding config.json + model.safetensors (Hugging "
                "Face) or config.json + model.weights.h5 (Keras preset)."
            )
        entry = cls._registered(preset)
        target = entry["class"]
        if load_weights is None:
            load_weights = True
        if not load_weights:
            return target(**{**entry["config"], **kwargs})
        candidates = local_weight_candidates(_canonical(preset))
        for folder in candidates:
            if _is_checkpoint_folder(folder):
                return target._from_folder(folder, True, **kwargs)
        raise _weights_not_found(preset, entry, candidates)

    @classmethod
    def _registered(cls, preset):
        """The registry entry of `preset`, which must build a `cls`."""
        _ensure_registered()
        entry = _PRESETS.get(_canonical(preset))
        if entry is None:
            close = suggest(preset, list(_PRESETS) + list(_ALIASES))
            hint = f" Did you mean {' or '.join(map(repr, close))}?"
            hint = hint if close else ""
            raise UnknownPresetError(
                f"Unknown preset {preset!r} (and no such folder).{hint} "
                f"Known presets: {sorted(cls.presets or _PRESETS)}."
            )
        target = entry["class"]
        if not (issubclass(target, cls) or issubclass(cls, target)):
            raise UnknownPresetError(
                f"Preset {preset!r} builds a {target.__name__}, not a "
                f"{cls.__name__}. Call {target.__name__}.from_preset or "
                f"edge_backbones.from_preset."
            )
        return entry

    @classmethod
    def _from_folder(cls, path, load_weights, **kwargs):
        config_path = os.path.join(path, KERAS_CONFIG_FILE)
        if not os.path.isfile(config_path):
            raise CheckpointError(
                f"{path!r} has no config.json. A checkpoint folder holds "
                "config.json + model.safetensors (Hugging Face) or "
                "config.json + model.weights.h5 (Keras preset)."
            )
        try:
            with open(config_path) as f:
                config = json.load(f)
        except (OSError, json.JSONDecodeError) as exc:
            raise CheckpointError(
                f"{config_path!r} is not readable JSON ({exc})."
            ) from exc
        if not isinstance(config, dict):
            raise CheckpointError(
                f"{config_path!r} holds a JSON {type(config).__name__} "
                f"({str(config)[:60]}), not an object: it is not a "
                "checkpoint config. A checkpoint folder holds the config.json"
                " written with its weights (save_pretrained or "
                "save_to_preset)."
            )
        _ensure_registered()
        if "model_type" in config:
            for family in _FAMILIES:
                if config["model_type"] in family.hf_model_types and (
                    issubclass(family, cls) or issubclass(cls, family)
                ):
                    return family._from_hf_checkpoint(
                        path, config, load_weights, **kwargs
                    )
            known = {f.__name__: f.hf_model_types for f in _FAMILIES}
            raise CheckpointError(
                f"{config_path!r} is a Hugging Face {config['model_type']!r}"
                f" checkpoint, which {cls.__name__} cannot load. Loadable "
                f"model types: {known}."
            )
        if "class_name" in config:
            return cls._from_keras_preset(path, config, load_weights, kwargs)
        raise CheckpointError(
            f"{config_path!r} is neither a Hugging Face config (no "
            "'model_type') nor a Keras preset config (no 'class_name')."
        )

    @classmethod
    def _from_keras_preset(cls, path, config, load_weights, kwargs):
        by_name = {sub.__name__: sub for sub in _subclasses(Backbone)}
        family = by_name.get(str(config["class_name"]))
        if family is None:
            raise CheckpointError(
                f"{path!r} holds a {config['class_name']!r}; this package "
                f"builds {sorted(by_name)}."
            )
        if not isinstance(config.get("config"), dict):
            raise CheckpointError(
                f"{path!r}: config.json's 'config' is "
                f"{config.get('config')!r}, not an object of constructor "
                "arguments; write the folder again with save_to_preset."
            )
        backbone = family.from_config({**config["config"], **kwargs})
        if load_weights:
            load_keras_preset_weights(backbone, path)
        return backbone

    def save_to_preset(self, path: str | os.PathLike[str]) -> None:
        """Writes config.json + model.weights.h5 to `path`, atomically."""
        save_keras_preset(self, path)


def load_keras_preset_weights(model: Any, path: str) -> None:
    """Loads the model.weights.h5 a `save_keras_preset` folder holds.

    Raises:
        WeightsNotFoundError: the folder has no weights file.
    """
    weights = os.path.join(path, KERAS_WEIGHTS_FILE)
    if not os.path.isfile(weights):
        raise WeightsNotFoundError(
            f"{path!r} has no {KERAS_WEIGHTS_FILE}; pass "
            "load_weights=False for the architecture alone."
        )
    model.load_weights(weights)


def save_keras_preset(model: Any, path: str | os.PathLike[str]) -> None:
    """Writes a Keras model's config.json (its class and `get_config()`)
    and model.weights.h5 to `path`, atomically: the preset folder that
    `from_preset` reads back, for backbones and the task models on them."""
    from edge_backbones import __version__

    with staged_directory(path) as staging:
        with open(os.path.join(staging, KERAS_CONFIG_FILE), "w") as f:
            json.dump(
                {
                    "module": type(model).__module__,
                    "class_name": type(model).__name__,
                    "config": model.get_config(),
                    "edge_backbones_version": __version__,
                },
                f,
                indent=2,
                allow_nan=False,  # strict JSON, as every file we write
            )
        model.save_weights(os.path.join(staging, KERAS_WEIGHTS_FILE))
