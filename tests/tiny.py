"""The tiny models the whole suite builds: one home, so every test file
uses the same ones (the conftests wrap them in fixtures).

Keras backbones:
- `TinyBackbone`: two levels with the ops the real families lower to (conv
  patch embedding, `EdgeLayerNormalization`, single-head attention, GELU
  MLP), so the export modes meet MiT's / ViTDet's op mix at a fraction of
  the cost. The `tiny_backbone` fixture (tests/conftest.py) builds it.
- `TinyConvBackbone`: two strided convolutions of any input size, for the
  `Backbone` base class.
- `TINY_MIT*`, `TINY_VITDET*`, `TINY_SAM`: small configs of the real
  families.

.tflite files (no Backbone): `two_conv_model` (32x32 in, P1 stride 2 and
P2 stride 4 out) converted like the exporter does in float32 and full int8
with int8 / uint8 I/O (`convert_two_conv`), metadata as the exporter writes
it (`make_metadata`, `artifact_metadata`) and writers with and without the
content digest.
"""

import copy
import json
import os

import keras
import numpy as np
from keras import ops

from edge_backbones.core.artifact import plain_scheme
from edge_backbones.core.preprocessing import IMAGENET_PREPROCESSING
from edge_backbones.models.backbone import Backbone, FeatureInfo
from edge_backbones.models.layers import EdgeLayerNormalization

__all__ = [
    "PREPROCESSING",
    "SIZE",
    "TINY_MIT",
    "TINY_MIT_64",
    "TINY_MIT_TWO_STAGES",
    "TINY_MIT_TWO_STAGES_WIDE",
    "TINY_SAM",
    "TINY_VITDET",
    "TINY_VITDET_EXPORT",
    "TinyBackbone",
    "TinyConvBackbone",
    "artifact_metadata",
    "convert_two_conv",
    "convert_two_conv_all",
    "embed",
    "make_metadata",
    "save_tiny_sam_model",
    "strip_signatures",
    "two_conv_model",
    "write_artifact",
    "write_legacy_artifact",
    "write_with_metadata",
]

# --- configs of the real families -------------------------------------------

# four stages with 1-2 blocks, non-square input
TINY_MIT = {
    "depths": [1, 2, 1, 1],
    "num_layers": 4,
    "blockwise_num_heads": [1, 2, 3, 4],
    "blockwise_sr_ratios": [8, 4, 2, 1],
    "max_drop_path_rate": 0.1,
    "patch_sizes": [7, 3, 3, 3],
    "strides": [4, 2, 2, 2],
    "image_shape": (64, 96, 3),
    "hidden_dims": [8, 16, 24, 32],
}
# one block per stage, 8-16 channels at 64x64: timed in milliseconds
TINY_MIT_64 = {
    "depths": [1, 1, 1, 1],
    "hidden_dims": [8, 16, 16, 16],
    "blockwise_num_heads": [1, 1, 1, 1],
    "blockwise_sr_ratios": [4, 2, 1, 1],
    "image_shape": [64, 64, 3],
}
# Windowed blocks 0 and 2 (window 3 on a 4x5 or 6x10 grid: padded), global
# block 1; position tables stored for 4x4 tokens, so other inputs resize them.
TINY_VITDET = {
    "hidden_size": 16,
    "num_layers": 3,
    "intermediate_dim": 32,
    "num_heads": 2,
    "global_attention_layer_indices": [1],
    "image_shape": (32, 32, 3),
    "patch_size": 8,
    "num_output_channels": 8,
    "window_size": 3,
}
# TINY_VITDET wide enough (>= 1024 weights per dense) that the converter
# quantizes its weights, as it does the full-size ones
TINY_VITDET_EXPORT = {
    **TINY_VITDET,
    "hidden_size": 32,
    "intermediate_dim": 64,
    "num_output_channels": 32,
}


# two MiT stages (P1, P2)
TINY_MIT_TWO_STAGES = {
    "depths": [1, 1],
    "num_layers": 2,
    "blockwise_num_heads": [1, 1],
    "blockwise_sr_ratios": [2, 1],
    "max_drop_path_rate": 0.0,
    "patch_sizes": [7, 3],
    "strides": [4, 2],
    "hidden_dims": [8, 16],
}
# a SegFormer head on a four-stage MiT, 8-16 channels, one block each
# (transformers' SegformerConfig keys)
TINY_SEGFORMER = {
    "hidden_sizes": [8, 16, 16, 16],
    "depths": [1, 1, 1, 1],
    "num_attention_heads": [1, 1, 1, 1],
    "sr_ratios": [4, 2, 1, 1],
    "decoder_hidden_size": 16,
}
# wider, two heads in P2, at 32x32
TINY_MIT_TWO_STAGES_WIDE = {
    **TINY_MIT_TWO_STAGES,
    "blockwise_num_heads": [1, 2],
    "hidden_dims": [16, 32],
    "image_shape": (32, 32, 3),
}
# SAM's layout (windowed + global attention, relative positions, neck with
# LayerNorm2d) at toy widths, overriding a SAM preset's config; at 128x128
# the 8x8 grid pads to one 14x14 window
TINY_SAM = {
    "hidden_size": 48,
    "num_layers": 2,
    "intermediate_dim": 192,
    "num_heads": 2,
    "global_attention_layer_indices": [1],
    "patch_size": 16,
    "num_output_channels": 32,
    "window_size": 14,
}


def save_tiny_sam_checkpoint(folder):
    """A random Hugging Face SAM vision encoder at toy widths, saved as
    safetensors in `folder` (needs the test extra: torch, transformers)."""
    import transformers

    vision = transformers.SamVisionConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        image_size=32, patch_size=8, window_size=2, global_attn_indexes=[1],
        output_channels=8, mlp_dim=48,
    )  # fmt: skip
    transformers.SamVisionModel(vision).save_pretrained(
        folder, safe_serialization=True
    )


def save_tiny_sam_model(folder, seed=0, patch_size=8):
    """A random Hugging Face `SamModel` (all three parts) at toy widths,
    saved as safetensors in `folder`; returns the torch model.

    64x64 input, 8x8 embedding grid (windows of 3, padded, and one global
    block), 32-channel decoder. `patch_size` 16 quarters the tokens (the
    NPU stage's 512x512 export). transformers initialises a small SAM's
    vision neck near 1e-10, which would make every embedding ~0: every
    parameter is drawn again (normal, std 0.2; norm scales around 1).
    """
    import torch
    import transformers

    config = transformers.SamConfig(
        vision_config=dict(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            image_size=64, patch_size=patch_size, window_size=3,
            global_attn_indexes=[1], output_channels=32, mlp_dim=48,
            num_pos_feats=16,
        ),
        prompt_encoder_config=dict(
            hidden_size=32, image_size=64, patch_size=patch_size,
            mask_input_channels=8,
        ),
        mask_decoder_config=dict(
            hidden_size=32, mlp_dim=64, num_hidden_layers=2,
            num_attention_heads=2, iou_head_hidden_dim=16,
        ),
    )  # fmt: skip
    torch.manual_seed(seed)
    model = transformers.SamModel(config).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            is_norm = "norm" in name and name.endswith("weight")
            parameter.copy_(
                torch.randn_like(parameter) * 0.2 + (1.0 if is_norm else 0.0)
            )
    model.save_pretrained(folder, safe_serialization=True)
    return model


# --- Keras backbones --------------------------------------------------------
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
        return copy.deepcopy(IMAGENET_PREPROCESSING)

    def get_config(self):
        return {
            **super().get_config(),
            "dim": self.dim,
            "image_shape": self.image_shape,
        }


@keras.saving.register_keras_serializable(package="edge_backbones_tests")
class TinyConvBackbone(Backbone):
    """P1 (stride 4) and P2 (stride 8) from two convolutions, any size."""

    def __init__(self, channels=8, image_shape=(None, None, 3), **kwargs):
        images = keras.Input(image_shape)
        p1 = keras.layers.Conv2D(channels, 3, strides=4, padding="same")(images)
        p1 = EdgeLayerNormalization()(p1)
        p2 = keras.layers.Conv2D(
            2 * channels, 3, strides=2, padding="same", activation="gelu"
        )(p1)
        super().__init__(images, p2, **kwargs)
        self._set_pyramid(
            {"P1": p1, "P2": p2},
            [
                FeatureInfo("P1", channels, 4),
                FeatureInfo("P2", 2 * channels, 8),
            ],
        )
        self.channels = channels
        self.image_shape = image_shape

    def get_config(self):
        return {
            **super().get_config(),
            "channels": self.channels,
            "image_shape": self.image_shape,
        }


# --- .tflite files of a two-convolution model -------------------------------

SIZE = 32
# the files' metadata preprocessing, as every preset's (read, never edited)
PREPROCESSING = IMAGENET_PREPROCESSING


def two_conv_model():
    """P2 and P1 (in that order, the reverse of the levels') of 32x32."""
    keras.utils.set_random_seed(0)
    images = keras.Input((SIZE, SIZE, 3), batch_size=1, name="images")
    p1 = keras.layers.Conv2D(8, 3, 2, "same", activation="relu")(images)
    p2 = keras.layers.Conv2D(16, 3, 2, "same")(p1)
    # the dict order is the reverse of the level order on purpose
    return keras.Model(images, {"P2": p2, "P1": p1})


def convert_two_conv(saved_model, io_type=None):
    """The SavedModel in float32, or full int8 with `io_type` I/O."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
    if io_type is not None:
        rng = np.random.default_rng(0)

        def representative():
            for _ in range(16):
                x = rng.uniform(-2.2, 2.7, (1, SIZE, SIZE, 3))
                yield {"images": x.astype(np.float32)}

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS_INT8
        ]
        converter.inference_input_type = io_type
        converter.inference_output_type = io_type
    return converter.convert()


def embed(model_content, payload, name="edge_backbones"):
    """`model_content` with `payload` (bytes) as metadata entry `name`."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(model_content)
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(payload, np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = name
    entry.buffer = len(model.buffers) - 1
    model.metadata = [*(model.metadata or []), entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def make_metadata(input_dtype="float32", preprocessing=None):
    """The two-convolution model's metadata, complete as the exporter
    writes it (artifact.schema.json), with placeholder figures."""
    mode = "fp32" if input_dtype == "float32" else "int8_io"
    integer = input_dtype != "float32"
    return {
        "schema": "edge_backbones.tflite/1",
        "model": {
            "name": "tiny",
            "class_name": "Tiny",
            "config": {},
            "weights": "random",
            "params": 1320,
        },
        "mode": mode,
        "recipe": None,
        "scheme": plain_scheme(
            "wi8_ai8_io8" if integer else "fp32",
            mode,
            "int8" if integer else "fp32",
            "integer" if integer else "float32",
        ),
        "input": {
            "name": "images",
            "shape": [1, SIZE, SIZE, 3],
            "dtype": input_dtype,
            "quantization": None,
            "preprocessing": copy.deepcopy(preprocessing or PREPROCESSING),
        },
        "outputs": {
            "P1": {
                "shape": [1, 16, 16, 8],
                "stride": 2,
                "channels": 8,
                "dtype": input_dtype,
                "quantization": None,
            },
            "P2": {
                "shape": [1, 8, 8, 16],
                "stride": 4,
                "channels": 16,
                "dtype": input_dtype,
                "quantization": None,
            },
        },  # fmt: skip
        "fidelity": {
            "images": 2,
            "levels": {
                "P1": {
                    "cosine": 1.0,
                    "sqnr_db": None,
                    "max_abs": 0.0,
                    "exact": True,
                },
                "P2": {
                    "cosine": 1.0,
                    "sqnr_db": None,
                    "max_abs": 0.0,
                    "exact": True,
                },
            },  # fmt: skip
            "min_cosine": 0.999,
            "holdout": "synthetic: no calibration photos were given",
        },
        "verified_on": {
            "arch": "x86_64",
            "emulated": None,
            "runtime": "litert 2.3.0",
            "delegate": "xnnpack",
        },
        "graph": {
            "op_count": 2,
            "op_histogram": {"CONV_2D": 2},
            "max_tensor_rank": 4,
            "gpu_compatible": True,
        },
        "versions": {"edge_backbones": "0.1.0"},
        "created": "2026-11-25T22:20:31+00:00",
    }


def write_with_metadata(path, model_content, metadata):
    """Embeds `metadata` as plain JSON (no content digest) at `path`."""
    path.write_bytes(embed(model_content, json.dumps(metadata).encode()))
    return path


def convert_two_conv_all(folder):
    """{"f32", "int8", "uint8": .tflite bytes} of `two_conv_model`."""
    import tensorflow as tf

    from edge_backbones.exporter.graph import write_saved_model

    saved = write_saved_model(
        two_conv_model(), os.path.join(folder, "saved_model")
    )
    return {
        "f32": convert_two_conv(saved),
        "int8": convert_two_conv(saved, tf.int8),
        "uint8": convert_two_conv(saved, tf.uint8),
    }


def artifact_metadata(input_dtype="float32", mode=None, fidelity=None):
    """Metadata as the exporter writes it (model, mode, input, outputs)."""
    metadata = make_metadata(input_dtype)
    if mode is not None:
        metadata["mode"] = mode
    metadata["fidelity"] = fidelity or {
        "images": 2,
        "levels": {
            "P1": {"cosine": 0.9991, "sqnr_db": 30.5, "max_abs": 0.01},
            "P2": {"cosine": 0.9995, "sqnr_db": 33.1, "max_abs": 0.02},
        },
        "min_cosine": 0.999,
        "holdout": "calibration",
    }
    return metadata


def write_artifact(path, content, metadata):
    """Embeds `metadata` (with its content digest) and writes `path`."""
    from edge_backbones.exporter.tflite_metadata import embed_metadata

    data = embed_metadata(content, metadata)
    with open(path, "wb") as f:
        f.write(data)
    return path


def write_legacy_artifact(path, content, metadata):
    """As exports before the content digest wrote it: plain JSON (which
    then allowed Infinity), no `content_sha256`."""
    payload = json.dumps(metadata).encode()
    with open(path, "wb") as f:
        f.write(embed(content, payload))
    return path


def strip_signatures(content):
    """`content` with its SignatureDefs removed, as some tools leave it."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(content)
    model.signatureDefs = []
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
