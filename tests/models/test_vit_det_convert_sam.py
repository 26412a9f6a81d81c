"""Hugging Face SAM checkpoints -> ViTDetBackbone: parity and bad files."""

import json
import os

import numpy as np
import pytest

from edge_backbones.errors import CheckpointError, WeightsNotFoundError
from edge_backbones.models.backbone import from_preset
from edge_backbones.models.vit_det import ViTDetBackbone

# Every test here builds its checkpoint with Hugging Face SAM (test extra).
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
safetensors_numpy = pytest.importorskip("safetensors.numpy")
load_file = safetensors_numpy.load_file
save_file = safetensors_numpy.save_file
SamConfig = transformers.SamConfig
SamModel = transformers.SamModel
SamVisionConfig = transformers.SamVisionConfig
SamVisionModel = transformers.SamVisionModel

# 8x8 tokens: windows of 3 (padded to 9x9) in blocks 0 and 2, global block 1.
VISION = {
    "hidden_size": 32,
    "num_hidden_layers": 3,
    "num_attention_heads": 2,
    "image_size": 64,
    "patch_size": 8,
    "window_size": 3,
    "global_attn_indexes": [1],
    "output_channels": 16,
    "mlp_dim": 48,
}
TOLERANCE = 1e-4


def _randomize(module, seed):
    # HF starts position tables at zero; random values make them count.
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            scale = 1.0 if name.endswith("layer_norm1.weight") else 0.0
            parameter.copy_(torch.randn_like(parameter) * 0.2 + scale)


def _images():
    rng = np.random.default_rng(0)
    return rng.normal(size=(2, 64, 64, 3)).astype("float32")


def _max_abs_diff(backbone, hf_encoder, images):
    with torch.no_grad():
        pixels = torch.from_numpy(images.transpose(0, 3, 1, 2))
        expected = hf_encoder(pixels).last_hidden_state.numpy()
    got = np.asarray(backbone(images))
    return float(np.abs(got - expected.transpose(0, 2, 3, 1)).max())


@pytest.fixture(scope="module")
def vision_checkpoint(tmp_path_factory):
    model = SamVisionModel(SamVisionConfig(**VISION)).eval()
    _randomize(model, 0)
    path = str(tmp_path_factory.mktemp("sam_vision"))
    model.save_pretrained(path, safe_serialization=True)
    return path, model


@pytest.mark.parametrize(
    "overrides",
    [{}, {"use_rel_pos": False, "use_abs_pos": False, "qkv_bias": False}],
)
def test_sam_vision_model_parity(tmp_path, overrides):
    model = SamVisionModel(SamVisionConfig(**VISION, **overrides)).eval()
    _randomize(model, 1)
    model.save_pretrained(str(tmp_path), safe_serialization=True)
    with open(tmp_path / "config.json") as f:
        assert json.load(f)["model_type"] == "sam_vision_model"
    backbone = ViTDetBackbone.from_preset(str(tmp_path))
    assert backbone.use_rel_pos == overrides.get("use_rel_pos", True)
    assert backbone.use_abs_pos == overrides.get("use_abs_pos", True)
    assert backbone.use_bias == overrides.get("qkv_bias", True)
    diff = _max_abs_diff(backbone, model.vision_encoder, _images())
    print(f"SamVisionModel {overrides or 'default'}: max abs diff {diff:.2e}")
    assert diff <= TOLERANCE


def test_sam_model_parity(tmp_path):
    model = SamModel(SamConfig(vision_config=VISION)).eval()
    _randomize(model.vision_encoder, 2)
    model.save_pretrained(str(tmp_path), safe_serialization=True)
    with open(tmp_path / "config.json") as f:
        assert json.load(f)["model_type"] == "sam"
    # The generic entry point dispatches on model_type.
    backbone = from_preset(str(tmp_path))
    assert isinstance(backbone, ViTDetBackbone)
    diff = _max_abs_diff(backbone, model.vision_encoder, _images())
    print(f"SamModel: max abs diff {diff:.2e}")
    assert diff <= TOLERANCE


def test_preset_name_finds_local_weights(
    vision_checkpoint, tmp_path, monkeypatch
):
    path, model = vision_checkpoint
    os.symlink(path, tmp_path / "sam_vit_base")
    monkeypatch.setenv("EDGE_BACKBONES_WEIGHTS", str(tmp_path))
    backbone = ViTDetBackbone.from_preset("sam_vit_base")
    assert _max_abs_diff(backbone, model.vision_encoder, _images()) <= TOLERANCE


def test_image_shape_override_resizes_tables_at_load(vision_checkpoint):
    # Export builds presets at its image size: the tables are resized once
    # at load, which must equal resizing them at call time.
    path = vision_checkpoint[0]
    images = _images()[:, :40, :56]
    native = ViTDetBackbone.from_preset(path)
    resized = ViTDetBackbone.from_preset(path, image_shape=(40, 56, 3))
    table = resized.get_layer("position_embedding").pos_embed
    assert tuple(table.shape) == (1, 5, 7, 32)
    np.testing.assert_allclose(
        np.asarray(resized(images)), np.asarray(native(images)), atol=1e-5
    )


def _copy_checkpoint(source, target, edit):
    os.makedirs(target)
    with open(os.path.join(source, "config.json")) as f:
        config = f.read()
    with open(os.path.join(target, "config.json"), "w") as f:
        f.write(config)
    tensors = load_file(os.path.join(source, "model.safetensors"))
    edit(tensors)
    save_file(tensors, os.path.join(target, "model.safetensors"))
    return target


def test_bad_keys_are_all_listed(vision_checkpoint, tmp_path):
    def edit(tensors):
        del tensors["vision_encoder.neck.conv2.weight"]
        tensors["vision_encoder.layers.0.attn.extra"] = np.zeros(2, "float32")
        tensors["vision_encoder.layers.1.mlp.lin1.bias"] = np.zeros(
            7, "float32"
        )

    path = _copy_checkpoint(vision_checkpoint[0], str(tmp_path / "bad"), edit)
    with pytest.raises(CheckpointError) as error:
        ViTDetBackbone.from_preset(path)
    message = str(error.value)
    assert "missing 1: vision_encoder.neck.conv2.weight" in message
    assert "unexpected 1: vision_encoder.layers.0.attn.extra" in message
    assert "vision_encoder.layers.1.mlp.lin1.bias" in message
    assert "model (48,)" in message


def test_corrupt_or_absent_safetensors(vision_checkpoint, tmp_path):
    source = vision_checkpoint[0]
    corrupt = _copy_checkpoint(source, str(tmp_path / "corrupt"), dict.clear)
    weights = os.path.join(corrupt, "model.safetensors")
    with open(weights, "wb") as f:
        f.write(b"\x00\x01 not a safetensors file")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        ViTDetBackbone.from_preset(corrupt)
    os.remove(weights)
    with pytest.raises(WeightsNotFoundError, match="no model.safetensors"):
        ViTDetBackbone.from_preset(corrupt)
    # The architecture alone needs no weights file.
    backbone = ViTDetBackbone.from_preset(corrupt, load_weights=False)
    assert backbone.count_params() == sum(
        p.numel() for p in vision_checkpoint[1].parameters()
    )
