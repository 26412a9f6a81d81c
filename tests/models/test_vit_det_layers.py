"""ViTDet layers against PyTorch / Hugging Face SAM references."""

import numpy as np
import pytest

from edge_backbones.models.vit_det.vit_det_layers import (
    ViTDetAttention,
    ViTDetPositionEmbedding,
    ViTDetWindowPartition,
    ViTDetWindowUnpartition,
    linear_resize_matrix,
    relative_position_matrix,
)

# Every test here compares against a PyTorch / SAM reference (test extra).
torch = pytest.importorskip("torch")
F = pytest.importorskip("torch.nn.functional")
modeling_sam = pytest.importorskip("transformers.models.sam.modeling_sam")
SamVisionConfig = modeling_sam.SamVisionConfig
SamVisionAttention = modeling_sam.SamVisionAttention
SamVisionLayer = modeling_sam.SamVisionLayer


@pytest.mark.parametrize("in_size, out_size", [(27, 13), (27, 41), (7, 7)])
def test_linear_resize_matrix_matches_torch(in_size, out_size):
    table = np.random.default_rng(0).normal(size=(in_size, 6))
    expected = (
        F.interpolate(
            torch.from_numpy(table.T[None]), size=out_size, mode="linear"
        )[0]
        .numpy()
        .T
    )
    got = linear_resize_matrix(in_size, out_size) @ table
    np.testing.assert_allclose(got, expected, atol=1e-12)


@pytest.mark.parametrize("grid, size", [((4, 4), (5, 7)), ((8, 6), (3, 4))])
def test_position_embedding_resize_matches_torch_bicubic(grid, size):
    # Detectron2's get_abs_pos: F.interpolate(mode="bicubic").
    layer = ViTDetPositionEmbedding(grid)
    layer.build((1, *size, 5))
    table = np.random.default_rng(1).normal(size=(1, *grid, 5))
    layer.pos_embed.assign(table.astype("float32"))
    expected = F.interpolate(
        torch.from_numpy(table).permute(0, 3, 1, 2),
        size=size,
        mode="bicubic",
        align_corners=False,
    ).permute(0, 2, 3, 1)
    got = np.asarray(layer(np.zeros((1, *size, 5), "float32")))
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-5)


@pytest.mark.parametrize("size, table_size", [(5, 5), (5, 9), (9, 5)])
def test_relative_position_matrix_matches_sam(size, table_size):
    config = SamVisionConfig(hidden_size=8, num_attention_heads=2)
    attention = SamVisionAttention(config, window_size=3)
    table = torch.randn(table_size, 4, dtype=torch.float64)
    expected = attention.get_rel_pos(size, size, table).numpy()
    got = relative_position_matrix(size, size, table_size) @ table.numpy()
    np.testing.assert_allclose(got.reshape(size, size, 4), expected, atol=1e-12)


def test_window_partition_matches_sam_and_round_trips():
    x = np.random.default_rng(2).normal(size=(2, 5, 7, 6)).astype("float32")
    config = SamVisionConfig(hidden_size=6, num_attention_heads=2)
    config._attn_implementation = "eager"
    layer = SamVisionLayer(config, window_size=3)
    expected, _ = layer.window_partition(torch.from_numpy(x), 3)
    windows = ViTDetWindowPartition(3)(x)
    np.testing.assert_array_equal(np.asarray(windows), expected.numpy())
    restored = ViTDetWindowUnpartition(3)([windows, x])
    np.testing.assert_array_equal(np.asarray(restored), x)


@pytest.mark.parametrize("use_bias", [True, False])
def test_global_attention_on_a_new_grid_matches_sam(use_bias):
    # Tables stored for 4x4 tokens, run on 5x7: SAM interpolates them.
    config = SamVisionConfig(
        hidden_size=8,
        num_attention_heads=2,
        image_size=32,
        patch_size=8,
        qkv_bias=use_bias,
    )
    torch.manual_seed(0)
    reference = SamVisionAttention(config, window_size=0).eval()
    with torch.no_grad():
        for parameter in reference.parameters():
            parameter.normal_(0.0, 0.5)
    ours = ViTDetAttention(
        2, use_bias=use_bias, use_rel_pos=True, rel_pos_size=(4, 4)
    )
    ours.build((None, None, None, 8))
    state = {k: v.numpy() for k, v in reference.state_dict().items()}
    ours.qkv.kernel.assign(state["qkv.weight"].T)
    if use_bias:
        ours.qkv.bias.assign(state["qkv.bias"])
    ours.proj.kernel.assign(state["proj.weight"].T)
    ours.proj.bias.assign(state["proj.bias"])
    ours.rel_pos_h.assign(state["rel_pos_h"])
    ours.rel_pos_w.assign(state["rel_pos_w"])
    x = np.random.default_rng(3).normal(size=(2, 5, 7, 8)).astype("float32")
    with torch.no_grad():
        expected, _ = reference(torch.from_numpy(x))
    np.testing.assert_allclose(np.asarray(ours(x)), expected.numpy(), atol=1e-5)
