"""Both families read Hugging Face checkpoints through one reader.

The same bad checkpoint raises the same error type, with the same words,
whichever family loads it: a folder without its weights file, and a tensor
of the wrong shape (listed by the checkpoint's own key).
"""

import numpy as np
import pytest

from edge_backbones.errors import CheckpointError, WeightsNotFoundError
from edge_backbones.models.backbone import Backbone
from tests.tiny import save_tiny_sam_checkpoint

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
safetensors_numpy = pytest.importorskip("safetensors.numpy")


def _segformer(folder):
    config = transformers.SegformerConfig(
        hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1],
        num_attention_heads=[1, 1, 1, 1], decoder_hidden_size=16,
    )  # fmt: skip
    transformers.SegformerModel(config).save_pretrained(
        folder, safe_serialization=True
    )
    return "encoder.block.0.0.mlp.dense1.weight"


def _sam(folder):
    save_tiny_sam_checkpoint(folder)
    return "vision_encoder.layers.0.mlp.lin1.weight"


FAMILIES = {"mit": _segformer, "vit_det": _sam}


@pytest.fixture(params=sorted(FAMILIES))
def checkpoint(request, tmp_path):
    folder = tmp_path / request.param
    key = FAMILIES[request.param](folder)
    return folder, key


def test_missing_weights_file_is_one_error_type(checkpoint):
    folder, _ = checkpoint
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    with pytest.raises(CheckpointError) as caught:
        Backbone.from_preset(str(folder))
    assert type(caught.value) is WeightsNotFoundError
    message = str(caught.value)
    assert "has config.json but no model.safetensors" in message
    assert "pytorch_model.bin" in message  # what the folder does hold
    assert "safe_serialization=True" in message
    assert "load_weights=False" in message
    # the architecture alone still builds
    assert Backbone.from_preset(str(folder), load_weights=False)


def test_wrong_shape_is_listed_by_its_key_and_changes_nothing(checkpoint):
    folder, key = checkpoint
    path = folder / "model.safetensors"
    tensors = safetensors_numpy.load_file(path)
    tensors[key] = np.zeros((tensors[key].shape[0] + 1, 7), "float32")
    safetensors_numpy.save_file(tensors, path)
    with pytest.raises(CheckpointError) as caught:
        Backbone.from_preset(str(folder))
    assert type(caught.value) is CheckpointError
    message = str(caught.value)
    assert "wrong shape" in message and key in message
    assert "does not fit" in message and "missing" not in message
