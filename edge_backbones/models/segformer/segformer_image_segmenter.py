"""SegFormerImageSegmenter: per-pixel class logits on a SegFormerBackbone."""

import json
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import keras

from edge_backbones.errors import (
    CheckpointError,
    InputError,
    UnknownPresetError,
    WeightsNotFoundError,
)
from edge_backbones.models.backbone import (
    DEFAULT_INPUT_SIZE,
    KERAS_CONFIG_FILE,
    FeatureInfo,
    load_keras_preset_weights,
    save_keras_preset,
    suggest,
    weight_folders,
)
from edge_backbones.models.segformer.segformer_backbone import (
    SegFormerBackbone,
)
from edge_backbones.models.segformer.segformer_layers import (
    ClassMap,
    class_dtype,
)
from edge_backbones.models.segformer.segformer_presets import (
    segmenter_presets,
)

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["CLASSES", "LOGITS", "SegFormerImageSegmenter"]

# output names: the SignatureDef keys of an exported segmenter and the keys
# the runtime returns
LOGITS = "logits"
CLASSES = "classes"
# where the class map is computed: on the logits' grid, or after resizing
# the logits to the input's size
CLASSES_AT = ("logits", "input")


def _checked_names(class_names, num_classes):
    if class_names is None:
        return [f"class_{i}" for i in range(num_classes)]
    names = [str(name) for name in class_names]
    if len(names) != num_classes:
        raise InputError(
            f"class_names has {len(names)} names for num_classes="
            f"{num_classes}; give one name per class (or None)."
        )
    return names


@keras.saving.register_keras_serializable(package="edge_backbones")
class SegFormerImageSegmenter(keras.Model):
    """SegFormer: a class score per pixel at the backbone's stride (4).

    A dropout (training only) and a 1x1 convolution to `num_classes`
    logits on `SegFormerBackbone`'s fused map: transformers'
    `SegformerForSemanticSegmentation` logits, at 1/4 of the input size.
    `feature_extractor()` adds the class map (`classes`, the argmax).

    Args:
        backbone: a `SegFormerBackbone`.
        num_classes: int, classes scored per pixel. With 1 (a binary
            head, trained with a sigmoid), the class map is `logit > 0`.
        preprocessor: None. Preprocessing is data here, not a layer:
            `preprocessing` gives the encoder's spec, which export and the
            runtime apply.
        class_names: list of `num_classes` strings (the checkpoint's
            `id2label`); None names them `class_0`, `class_1`, ...
        dropout: float, dropout before the classifier (training only).

    Example:
    ```python
    segmenter = SegFormerImageSegmenter.from_preset("/path/to/hf_folder")
    logits = segmenter(images)  # (batch, H / 4, W / 4, num_classes)
    masks = segmenter.feature_extractor()(images)["classes"]
    ```
    """

    def __init__(
        self,
        backbone: Any,
        num_classes: int,
        preprocessor: None = None,
        class_names: Sequence[str] | None = None,
        dropout: float = 0.1,
        **kwargs: Any,
    ) -> None:
        if preprocessor is not None:
            raise InputError(
                f"preprocessor={preprocessor!r}: this package carries "
                "preprocessing as data (`segmenter.preprocessing`), applied "
                "by export and the runtime; pass preprocessor=None."
            )
        if not isinstance(num_classes, int) or num_classes < 1:
            raise InputError(
                f"num_classes={num_classes!r} must be a positive int."
            )
        names = _checked_names(class_names, num_classes)
        dtype = kwargs.pop("dtype", None) or backbone.dtype_policy
        self.classifier_dropout = keras.layers.Dropout(
            dropout, dtype=dtype, name="classifier_dropout"
        )
        self.classifier = keras.layers.Conv2D(
            num_classes, 1, dtype=dtype, name="classifier"
        )
        logits = self.classifier(self.classifier_dropout(backbone.output))
        super().__init__(inputs=backbone.input, outputs=logits, **kwargs)
        self.backbone = backbone
        self.num_classes = num_classes
        self.preprocessor = None
        self.class_names = names
        self.dropout = dropout
        # where `feature_extractor` computes the class map by default: a
        # serving choice, not architecture (not in get_config)
        self.classes_at = "logits"

    @property
    def preprocessing(self) -> dict[str, Any]:
        """How 0-255 RGB pixels become this model's input: the encoder's."""
        return self.backbone.preprocessing

    @property
    def stride(self) -> int:
        """The logits' stride (4 for MiT)."""
        return self.backbone.stride

    @property
    def classes_dtype(self) -> str:
        """The class map's type: uint8 up to 256 classes, else int32."""
        return class_dtype(self.num_classes)

    @property
    def feature_info(self) -> list[Any]:
        """Per output: name, channels, stride, as a backbone's levels
        (`classes` has one channel, at the logits' stride or 1)."""
        stride = 1 if self.classes_at == "input" else self.stride
        return [
            FeatureInfo(LOGITS, self.num_classes, self.stride),
            FeatureInfo(CLASSES, 1, stride),
        ]

    def select_features(
        self,
        out_indices: Sequence[int] | None = None,
        out_features: Sequence[str] | None = None,
    ) -> list[str]:
        """Names of the outputs picked (a backbone's level selection)."""
        names = [info.name for info in self.feature_info]
        if out_indices is not None:
            return [names[i] for i in out_indices]
        return names if out_features is None else list(out_features)

    def peak_activation_bytes(self, height: int, width: int) -> int:
        """The largest float32 activation at batch 1: the encoder's, or
        the decoder's concatenation of every projected level at 1/4."""
        encoder = self.backbone.image_encoder
        rows, columns = -(-height // self.stride), -(-width // self.stride)
        levels = len(encoder.feature_info)
        concat = rows * columns * levels * self.backbone.projection_filters
        logits = self.num_classes * (
            height * width if self.classes_at == "input" else rows * columns
        )
        return max(
            encoder.peak_activation_bytes(height, width), 4 * concat, 4 * logits
        )

    def feature_extractor(
        self,
        out_features: Sequence[str] | None = None,
        classes_at: str | None = None,
    ) -> Any:
        """A Keras model from images to {"logits": ..., "classes": ...}.

        `classes` is the per-pixel argmax (`logit > 0` for one class) as
        `classes_dtype`, on the logits' grid (`classes_at="logits"`) or
        on the input's, the logits first resized bilinearly
        (`classes_at="input"`, transformers'
        `post_process_semantic_segmentation`); None takes the
        `classes_at` attribute ("logits" unless set: export sets it per
        target). `out_features` picks outputs by name, as a backbone's
        picks levels.
        """
        classes_at = self.classes_at if classes_at is None else classes_at
        if classes_at not in CLASSES_AT:
            raise InputError(
                f"classes_at={classes_at!r}; use one of {CLASSES_AT}."
            )
        names = [LOGITS, CLASSES]
        picked = names if out_features is None else list(out_features)
        unknown = [name for name in picked if name not in names]
        if unknown or not picked:
            raise InputError(
                f"out_features={out_features!r} names {unknown or 'nothing'};"
                f" a segmenter's outputs are {names}."
            )
        logits = self.output
        reference = self.input if classes_at == "input" else None
        scores = logits
        if self.num_classes == 1:
            # a sigmoid head: class 1 where the logit is positive, as the
            # argmax of (0, logit) would give
            scores = keras.layers.Concatenate(dtype=self.dtype_policy)(
                [keras.ops.zeros_like(logits), logits]
            )
        classes = ClassMap(dtype=self.dtype_policy, name="class_map")(
            scores, reference
        )
        outputs = {LOGITS: logits, CLASSES: classes}
        return keras.Model(
            self.input,
            {name: outputs[name] for name in names if name in picked},
            name=f"{self.name}_outputs",
        )

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trainable": self.trainable,
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "num_classes": self.num_classes,
            "preprocessor": None,
            "class_names": list(self.class_names),
            "dropout": self.dropout,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Self":
        config = dict(config)
        if isinstance(config.get("backbone"), dict):
            config["backbone"] = keras.saving.deserialize_keras_object(
                config["backbone"]
            )
        return cls(**config)

    # ---- presets and checkpoints --------------------------------------------

    presets = segmenter_presets

    @classmethod
    def natural_input_size(cls, preset: object) -> tuple[int, int]:
        """A preset's training resolution; `DEFAULT_INPUT_SIZE` otherwise."""
        entry = (
            segmenter_presets.get(preset) if isinstance(preset, str) else None
        )
        if entry is None:
            return DEFAULT_INPUT_SIZE
        height, width = entry["metadata"]["image_size"]
        return int(height), int(width)

    @classmethod
    def from_preset(
        cls, preset: str, load_weights: bool | None = True, **kwargs: Any
    ) -> "Self":
        """A segmenter from a preset name or a local checkpoint folder.

        A folder holds a Hugging Face `SegformerForSemanticSegmentation`
        (`config.json` + `model.safetensors`, read offline: encoder, decode
        head and `id2label`) or what `save_to_preset` wrote. A preset's
        weights load only when on disk; `load_weights=False` builds its
        architecture with random weights. `kwargs` go to the encoder
        (e.g. `image_shape`).
        """
        if os.path.isdir(preset):
            return cls._from_folder(preset, load_weights, kwargs)
        entry = segmenter_presets.get(preset)
        if entry is None:
            close = suggest(preset, list(segmenter_presets))
            hint = f" Did you mean {' or '.join(map(repr, close))}?"
            raise UnknownPresetError(
                f"Unknown segmenter preset {preset!r} (and no such folder)."
                f"{hint if close else ''} Known: {sorted(segmenter_presets)}."
            )
        if not load_weights:
            return cls._from_architecture(entry["config"], kwargs)
        repo = entry["metadata"]["hf_repo"]
        candidates = weight_folders(preset, repo)
        for folder in candidates:
            if os.path.isfile(os.path.join(folder, KERAS_CONFIG_FILE)):
                return cls._from_folder(folder, True, kwargs)
        looked = "\n  ".join(candidates)
        raise WeightsNotFoundError(
            f"Preset {preset!r} is the trained checkpoint {repo!r}, whose "
            "weights are not on this disk (nothing is downloaded). Looked "
            f"in:\n  {looked}\nFix: put the Hugging Face checkpoint "
            "(config.json + model.safetensors) in the first folder, load a "
            "folder with SegFormerImageSegmenter.from_preset('/path'), or "
            f"build random weights: from_preset({preset!r}, "
            "load_weights=False)."
        )

    @classmethod
    def _from_architecture(cls, config, kwargs):
        from edge_backbones.models.mit import MiTBackbone

        encoder = MiTBackbone.from_preset(
            config["image_encoder"], load_weights=False, **kwargs
        )
        backbone = SegFormerBackbone(encoder, config["projection_filters"])
        return cls(backbone, config["num_classes"])

    @classmethod
    def _from_folder(cls, path, load_weights, kwargs):
        config_path = os.path.join(path, KERAS_CONFIG_FILE)
        try:
            with open(config_path) as f:
                config = json.load(f)
        except (OSError, json.JSONDecodeError) as exc:
            raise CheckpointError(
                f"{config_path!r} is not readable JSON ({exc}); a checkpoint "
                "folder holds config.json + model.safetensors (Hugging Face)"
                " or config.json + model.weights.h5 (save_to_preset)."
            ) from exc
        if not isinstance(config, dict):
            raise CheckpointError(f"{config_path!r} is not a JSON object.")
        if config.get("model_type") == "segformer":
            return cls._from_hf_checkpoint(path, config, load_weights, kwargs)
        if config.get("class_name") == cls.__name__:
            segmenter = cls.from_config(config["config"])
            if load_weights:
                load_keras_preset_weights(segmenter, path)
            return segmenter
        raise CheckpointError(
            f"{config_path!r} is neither a Hugging Face SegFormer config "
            f"(model_type {config.get('model_type')!r}) nor a "
            f"{cls.__name__} preset (class_name "
            f"{config.get('class_name')!r})."
        )

    @classmethod
    def _from_hf_checkpoint(cls, path, hf_config, load_weights, kwargs):
        from edge_backbones.models.mit import MiTBackbone, convert_segformer
        from edge_backbones.models.segformer import convert_segformer_head

        config_path = os.path.join(path, KERAS_CONFIG_FILE)
        if load_weights and not convert_segformer_head.has_decode_head(path):
            raise CheckpointError(
                f"{path!r} holds a SegFormer encoder without a decode head "
                f"(architectures {hf_config.get('architectures')}). Load it "
                "with MiTBackbone.from_preset (export: --task backbone), or "
                "save a SegformerForSemanticSegmentation there."
            )
        filters, num_classes, names = (
            convert_segformer_head.convert_head_config(hf_config, config_path)
        )
        encoder = MiTBackbone(
            **{**convert_segformer.convert_config(hf_config, path), **kwargs}
        )
        segmenter = cls(
            SegFormerBackbone(encoder, filters),
            num_classes,
            class_names=names,
            dropout=float(hf_config.get("classifier_dropout_prob", 0.1)),
        )
        if load_weights:
            convert_segformer_head.load_weights(segmenter, path)
        return segmenter

    def save_to_preset(self, path: str | os.PathLike[str]) -> None:
        """Writes config.json + model.weights.h5 to `path`, atomically."""
        save_keras_preset(self, path)
