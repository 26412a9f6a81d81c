"""SegFormer: transformers' logits from its checkpoints, offline; presets,
round trips and the edge graph."""

import json

import keras
import numpy as np
import pytest

from edge_backbones.errors import (
    CheckpointError,
    InputError,
    UnknownPresetError,
    WeightsNotFoundError,
)
from edge_backbones.models.mit import MiTBackbone
from edge_backbones.models.segformer import (
    SegFormerBackbone,
    SegFormerImageSegmenter,
    segmenter_presets,
)
from edge_backbones.models.segformer.convert_segformer_head import (
    has_decode_head,
)
from edge_backbones.models.segformer.segformer_presets import head_params
from tests.models.backbone_harness import run_edge_graph_test
from tests.tiny import TINY_MIT

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
safetensors_torch = pytest.importorskip("safetensors.torch")

SMALL = {
    "hidden_sizes": [8, 16, 24, 32],
    "depths": [1, 2, 1, 1],
    "num_attention_heads": [1, 2, 3, 4],
    "sr_ratios": [4, 2, 2, 1],
    "mlp_ratios": [2, 4, 4, 3],
    "decoder_hidden_size": 16,
}
# a second architecture: three stages, another decoder width
THREE_STAGES = {
    "num_encoder_blocks": 3,
    "hidden_sizes": [8, 12, 16],
    "depths": [1, 1, 2],
    "num_attention_heads": [1, 2, 2],
    "sr_ratios": [2, 2, 1],
    "patch_sizes": [7, 3, 3],
    "strides": [4, 2, 2],
    "mlp_ratios": [4, 2, 2],
    "decoder_hidden_size": 24,
}


def _save(folder, num_labels, seed=0, **config):
    """A random SegformerForSemanticSegmentation whose every tensor (norms,
    biases, batch-norm statistics) is random, saved as safetensors."""
    torch.manual_seed(seed)
    hf_config = transformers.SegformerConfig(
        **config, id2label={i: f"class {i}" for i in range(num_labels)}
    )
    model = transformers.SegformerForSemanticSegmentation(hf_config).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.05)
        norm = model.decode_head.batch_norm
        norm.running_mean.normal_(0, 0.2)
        norm.running_var.uniform_(0.5, 2.0)
    model.save_pretrained(folder, safe_serialization=True)
    return model


def _reference(model, images):
    with torch.no_grad():
        logits = model(torch.from_numpy(images).permute(0, 3, 1, 2)).logits
    return logits.permute(0, 2, 3, 1).numpy()


def _as_json(config):
    return json.loads(json.dumps(config))


def _images(height, width, batch=2):
    rng = np.random.default_rng(1)
    return rng.normal(size=(batch, height, width, 3)).astype("float32")


@pytest.mark.parametrize(
    "config, num_labels, size",
    [
        (SMALL, 19, (64, 96)),  # non-square
        (SMALL, 150, (61, 90)),  # odd sizes: every conv floors
        (SMALL, 1, (64, 64)),
        (THREE_STAGES, 5, (48, 80)),
    ],
    ids=["19-64x96", "150-61x90", "1-64x64", "three-stages"],
)
def test_logits_match_transformers(tmp_path, config, num_labels, size):
    model = _save(tmp_path, num_labels, **config)
    images = _images(*size)
    expected = _reference(model, images)
    segmenter = SegFormerImageSegmenter.from_preset(str(tmp_path))
    outputs = segmenter.feature_extractor()(images)
    logits = keras.ops.convert_to_numpy(outputs["logits"])
    assert logits.shape == expected.shape  # 1/4 resolution, as transformers
    assert np.abs(logits - expected).max() <= 1e-4
    assert segmenter.class_names == [f"class {i}" for i in range(num_labels)]
    classes = keras.ops.convert_to_numpy(outputs["classes"])
    assert classes.dtype == np.uint8
    if num_labels == 1:  # a sigmoid head: foreground where the logit > 0
        np.testing.assert_array_equal(classes, expected[..., 0] > 0)
    else:
        np.testing.assert_array_equal(classes, expected.argmax(-1))


def test_classes_at_input_size_follow_transformers_post_processing(tmp_path):
    model = _save(tmp_path, 7, **SMALL)
    images = _images(64, 96, batch=1)
    processor = transformers.SegformerImageProcessor()
    with torch.no_grad():
        output = model(torch.from_numpy(images).permute(0, 3, 1, 2))
    expected = processor.post_process_semantic_segmentation(
        output, target_sizes=[(64, 96)]
    )[0].numpy()
    segmenter = SegFormerImageSegmenter.from_preset(str(tmp_path))
    classes = segmenter.feature_extractor(classes_at="input")(images)
    classes = keras.ops.convert_to_numpy(classes["classes"])[0]
    assert classes.shape == (64, 96)
    # bilinear resizes in two frameworks: a near-tie may flip
    assert (classes == expected).mean() >= 0.999


def test_save_to_preset_and_keras_round_trip(tmp_path):
    _save(tmp_path / "hf", 3, **SMALL)
    segmenter = SegFormerImageSegmenter.from_preset(str(tmp_path / "hf"))
    images = _images(32, 64)
    expected = keras.ops.convert_to_numpy(segmenter(images))
    segmenter.save_to_preset(str(tmp_path / "preset"))
    loaded = SegFormerImageSegmenter.from_preset(str(tmp_path / "preset"))
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(loaded(images)), expected
    )
    assert loaded.class_names == segmenter.class_names
    # as JSON: the file holds lists where the model held tuples
    assert _as_json(loaded.get_config()) == _as_json(segmenter.get_config())
    segmenter.save(tmp_path / "model.keras")
    restored = keras.saving.load_model(tmp_path / "model.keras")
    assert type(restored.backbone) is SegFormerBackbone
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(restored(images)), expected
    )


def test_head_less_checkpoint_is_refused(tmp_path):
    torch.manual_seed(0)
    encoder = transformers.SegformerModel(transformers.SegformerConfig(**SMALL))
    encoder.save_pretrained(tmp_path, safe_serialization=True)
    assert not has_decode_head(str(tmp_path))
    with pytest.raises(CheckpointError, match="without a decode head"):
        SegFormerImageSegmenter.from_preset(str(tmp_path))


def test_head_not_matching_config_names_the_tensors(tmp_path):
    _save(tmp_path, 4, **SMALL)
    config_path = tmp_path / "config.json"
    config = json.loads(config_path.read_text())
    config["decoder_hidden_size"] = 32  # the weights hold 16
    config_path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError) as caught:
        SegFormerImageSegmenter.from_preset(str(tmp_path))
    message = str(caught.value)
    assert "wrong shapes" in message
    assert "decode_head.batch_norm.running_var" in message
    assert str(tmp_path) in message and "decoder_hidden_size" in message


def test_classifier_not_matching_id2label_is_refused(tmp_path):
    _save(tmp_path, 4, **SMALL)
    config_path = tmp_path / "config.json"
    config = json.loads(config_path.read_text())
    config["id2label"] = {str(i): f"c{i}" for i in range(5)}
    config_path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="decode_head.classifier.weight"):
        SegFormerImageSegmenter.from_preset(str(tmp_path))


def test_num_labels_not_len_id2label_is_refused(tmp_path):
    _save(tmp_path, 4, **SMALL)
    config_path = tmp_path / "config.json"
    config = json.loads(config_path.read_text())
    config["num_labels"] = 5
    config_path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError) as caught:
        SegFormerImageSegmenter.from_preset(str(tmp_path))
    assert "config.json" in str(caught.value)
    assert "num_labels=5" in str(caught.value)
    assert "id2label names 4" in str(caught.value)


def test_presets_are_keras_hubs_and_count_their_weights():
    assert sorted(segmenter_presets) == sorted(
        [f"segformer_b{i}_ade20k_512" for i in range(5)]
        + ["segformer_b5_ade20k_640"]
        + [f"segformer_b{i}_cityscapes_1024" for i in range(6)]
    )
    # transformers' published size of nvidia/segformer-b0-finetuned-ade
    assert segmenter_presets["segformer_b0_ade20k_512"]["metadata"][
        "params"
    ] == pytest.approx(3.75e6, rel=1e-3)
    segmenter = SegFormerImageSegmenter.from_preset(
        "segformer_b0_cityscapes_1024",
        load_weights=False,
        image_shape=(64, 64, 3),
    )
    entry = segmenter_presets["segformer_b0_cityscapes_1024"]
    assert segmenter.count_params() == entry["metadata"]["params"]
    assert segmenter.num_classes == 19
    assert SegFormerImageSegmenter.natural_input_size(
        "segformer_b0_cityscapes_1024"
    ) == (1024, 1024)


def test_preset_weights_load_from_disk_or_say_where(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGE_BACKBONES_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(WeightsNotFoundError, match="load_weights=False"):
        SegFormerImageSegmenter.from_preset("segformer_b0_ade20k_512")
    with pytest.raises(UnknownPresetError, match="segformer_b0_ade20k_512"):
        SegFormerImageSegmenter.from_preset("segformer_bo_ade20k_512")
    _save(tmp_path / "segformer_b0_ade20k_512", 3, **SMALL)
    loaded = SegFormerImageSegmenter.from_preset("segformer_b0_ade20k_512")
    assert loaded.num_classes == 3


def test_the_segmenter_composes_its_encoder():
    encoder = MiTBackbone(**TINY_MIT)
    backbone = SegFormerBackbone(image_encoder=encoder, projection_filters=12)
    segmenter = SegFormerImageSegmenter(backbone, num_classes=6)
    assert segmenter.count_params() == encoder.count_params() + head_params(
        TINY_MIT["hidden_dims"], 12, 6
    )
    fused = backbone(_images(64, 96))
    assert tuple(fused.shape) == (2, 16, 24, 12)
    with pytest.raises(InputError, match="class_names has 2"):
        SegFormerImageSegmenter(backbone, 6, class_names=["a", "b"])
    with pytest.raises(InputError, match="preprocessor"):
        SegFormerImageSegmenter(backbone, 6, preprocessor=object())


def _tiny_segmenter(num_classes=5):
    encoder = MiTBackbone(**TINY_MIT)
    return SegFormerImageSegmenter(
        SegFormerBackbone(encoder, projection_filters=8), num_classes
    )


@pytest.mark.matrix_stage
def test_edge_graph(tmp_path):
    # static, rank <= 4, builtins only, GPU-compatible, int16x8-quantizable
    segmenter = _tiny_segmenter()
    model_file = run_edge_graph_test(
        segmenter, (64, 96), tmp_path, out_features=["logits"]
    )
    # one resize per level but the finest, which is already at 1/4
    assert model_file.op_histogram["RESIZE_BILINEAR"] == 3


@pytest.mark.matrix_stage
def test_class_map_is_one_arg_max_in_float_and_int8():
    from ai_edge_litert.interpreter import Interpreter

    from edge_backbones.runtime.model_file import read_model_file
    from tests.models.backbone_harness import float_tflite

    segmenter = _tiny_segmenter()
    tflite = float_tflite(segmenter, (64, 96))
    histogram = read_model_file(tflite).op_histogram
    assert histogram["ARG_MAX"] == 1
    assert "CUSTOM" not in histogram and "FLEX" not in str(histogram)
    images = _images(64, 96, batch=1)
    got = Interpreter(model_content=tflite).get_signature_runner()(
        images=images
    )
    expected = keras.ops.convert_to_numpy(segmenter(images)).argmax(-1)
    assert got["classes"].dtype == np.uint8
    np.testing.assert_array_equal(got["classes"], expected)
