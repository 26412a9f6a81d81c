"""Hugging Face SegFormer checkpoints load into MiTBackbone, offline."""

import json
import os

import keras
import numpy as np
import pytest

from edge_backbones.errors import (
    CheckpointError,
    UnknownPresetError,
    WeightsNotFoundError,
)
from edge_backbones.models.mit import MiTBackbone

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

SMALL = {
    "hidden_sizes": [8, 16, 24, 32],
    "depths": [1, 2, 1, 1],
    "num_attention_heads": [1, 2, 3, 4],
    "sr_ratios": [4, 2, 2, 1],
    "mlp_ratios": [2, 4, 4, 3],
}


def _save(model_cls, folder, max_shard_size="5GB", **config):
    """A random-init HF model whose every tensor (norms, biases) is random."""
    torch.manual_seed(0)
    model = model_cls(transformers.SegformerConfig(**config)).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    model.save_pretrained(
        folder, safe_serialization=True, max_shard_size=max_shard_size
    )
    return model


def _max_diffs(model, folder, height, width):
    torch.manual_seed(1)
    x = torch.randn(2, 3, height, width)
    encoder = getattr(model, "segformer", model)
    with torch.no_grad():
        hidden = encoder(x, output_hidden_states=True).hidden_states
    backbone = MiTBackbone.from_preset(str(folder))
    ours = backbone.feature_extractor()(x.permute(0, 2, 3, 1).numpy())
    diffs = {}
    for i, reference in enumerate(hidden):
        got = keras.ops.convert_to_numpy(ours[f"P{i + 1}"])
        reference = reference.permute(0, 2, 3, 1).numpy()
        assert got.shape == reference.shape
        diffs[f"P{i + 1}"] = float(np.abs(got - reference).max())
    return diffs


def test_default_segformer_model_parity(tmp_path):
    # SegformerConfig() is MiT-B0.
    model = _save(transformers.SegformerModel, tmp_path)
    diffs = _max_diffs(model, tmp_path, 64, 96)
    assert max(diffs.values()) <= 1e-4, diffs


def test_semantic_segmentation_checkpoint_parity(tmp_path):
    # Odd sizes: every conv floors, as PyTorch's does.
    model = _save(
        transformers.SegformerForSemanticSegmentation,
        tmp_path,
        num_labels=5,
        **SMALL,
    )
    keys = safetensors_numpy.load_file(tmp_path / "model.safetensors")
    assert any(key.startswith("decode_head.") for key in keys)
    diffs = _max_diffs(model, tmp_path, 61, 90)
    assert max(diffs.values()) <= 1e-4, diffs


@pytest.fixture
def small_checkpoint(tmp_path):
    folder = tmp_path / "small"
    _save(transformers.SegformerModel, folder, **SMALL)
    return folder


def _rewrite(folder, edit):
    path = folder / "model.safetensors"
    tensors = safetensors_numpy.load_file(path)
    edit(tensors)
    safetensors_numpy.save_file(tensors, path)


def test_missing_key(small_checkpoint):
    key = "encoder.block.1.1.mlp.dwconv.dwconv.weight"
    _rewrite(small_checkpoint, lambda t: t.pop(key))
    with pytest.raises(CheckpointError, match=f"missing keys: {key}"):
        MiTBackbone.from_preset(str(small_checkpoint))


def test_unexpected_key(small_checkpoint):
    def add(tensors):
        tensors["encoder.block.0.7.mlp.dense1.weight"] = np.zeros((2, 2))

    _rewrite(small_checkpoint, add)
    with pytest.raises(CheckpointError, match="unexpected keys: encoder.block"):
        MiTBackbone.from_preset(str(small_checkpoint))


def test_unexpected_unprefixed_key_in_prefixed_checkpoint(tmp_path):
    # A `segformer.`-prefixed checkpoint with a key outside the prefix (not
    # a head key): the error must name it whole, not with the prefix's
    # length cut off its front.
    _save(
        transformers.SegformerForSemanticSegmentation,
        tmp_path,
        num_labels=2,
        **SMALL,
    )
    stray = "auxiliary_projection.weight"
    _rewrite(tmp_path, lambda t: t.update({stray: np.zeros((2, 2))}))
    with pytest.raises(CheckpointError) as caught:
        MiTBackbone.from_preset(str(tmp_path))
    assert f"unexpected keys: {stray}" in str(caught.value)


def test_wrong_shape(small_checkpoint):
    config_path = small_checkpoint / "config.json"
    config = json.loads(config_path.read_text())
    config["mlp_ratios"] = [4, 4, 4, 4]
    config_path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="wrong shapes: .*mlp.dense1"):
        MiTBackbone.from_preset(str(small_checkpoint))


def test_truncated_file(small_checkpoint):
    path = small_checkpoint / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        MiTBackbone.from_preset(str(small_checkpoint))


def test_pickle_only_folder_is_refused(small_checkpoint):
    os.replace(
        small_checkpoint / "model.safetensors",
        small_checkpoint / "pytorch_model.bin",
    )
    with pytest.raises(CheckpointError, match="safe_serialization=True"):
        MiTBackbone.from_preset(str(small_checkpoint))


def test_sharded_checkpoint(tmp_path):
    model = _save(
        transformers.SegformerModel, tmp_path, max_shard_size="20KB", **SMALL
    )
    assert (tmp_path / "model.safetensors.index.json").is_file()
    diffs = _max_diffs(model, tmp_path, 64, 64)
    assert max(diffs.values()) <= 1e-4, diffs


def test_preset_weights_only_from_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGE_BACKBONES_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(WeightsNotFoundError, match="nvidia/mit-b0"):
        MiTBackbone.from_preset("mit_b0")
    with pytest.raises(UnknownPresetError, match="mit_b0"):
        MiTBackbone.from_preset("mit_b9")
    random = MiTBackbone.from_preset("mit_b0", load_weights=False)
    assert random.count_params() == 3319392
    # Put a B0 checkpoint where the preset looks, and it loads.
    folder = tmp_path / "weights" / "mit_b0"
    _save(transformers.SegformerModel, folder)
    loaded = MiTBackbone.from_preset("mit_b0")
    expected = safetensors_numpy.load_file(folder / "model.safetensors")
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(loaded.get_layer("stage4_norm").weights[1]),
        expected["encoder.layer_norm.3.bias"],
    )
