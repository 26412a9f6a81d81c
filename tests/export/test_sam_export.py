"""export_sam: the encoder + decoder pair, its task metadata and gates."""

import numpy as np
import pytest

from edge_backbones.errors import ExportError
from edge_backbones.exporter import sam as sam_export
from edge_backbones.runtime.metadata import read_metadata
from edge_backbones.runtime.model_file import read_model_file

pytest.importorskip("torch")
pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from tests.tiny import save_tiny_sam_model

    checkpoint = str(tmp_path_factory.mktemp("sam_checkpoint"))
    save_tiny_sam_model(checkpoint)
    out = str(tmp_path_factory.mktemp("sam_out"))
    # fp16's gate raised above what it can reach: rejected, not written
    gates = {**sam_export.SAM_DECODER_MODES}
    gates["fp16"] = {**gates["fp16"], "min_mean_iou": 1.01}
    original = sam_export.SAM_DECODER_MODES
    sam_export.SAM_DECODER_MODES = gates
    try:
        paths = sam_export.export_sam(
            checkpoint, out, modes=("fp32", "fp16"), max_points=2,
            log=lambda line: None,
        )  # fmt: skip
    finally:
        sam_export.SAM_DECODER_MODES = original
    return checkpoint, paths


def _metadata(path):
    return read_metadata(path, read_model_file(path))


def test_the_pair_records_what_ties_it(exported):
    checkpoint, paths = exported
    encoder = _metadata(paths["encoder"])["task"]
    decoder = _metadata(paths["fp32"])["task"]
    digest = sam_export.checkpoint_digest(checkpoint)
    assert encoder["kind"] == "sam_encoder"
    assert decoder["kind"] == "sam_decoder"
    for task in (encoder, decoder):
        assert task["checkpoint_sha256"] == digest
        assert task["image_size"] == [64, 64]
        assert task["embedding_shape"] == [8, 8, 32]
    assert decoder["max_points"] == 2 and decoder["num_point_slots"] == 4
    assert decoder["mask_input_size"] == [32, 32]
    assert sorted(decoder["inputs"]) == sorted(
        ["image_embeddings", "point_coords", "point_labels", "mask_input",
         "has_mask_input"]
    )  # fmt: skip


def test_decoder_verification_and_gate_are_recorded(exported):
    _, paths = exported
    verification = _metadata(paths["fp32"])["task"]["prompt_verification"]
    assert verification["mask_iou"]["mean"] == pytest.approx(1.0, abs=1e-3)
    assert verification["mask_iou"]["worst"] >= 0.99
    # 1 held-out image x 8 prompts x 4 masks
    assert verification["mask_iou"]["count"] == 32
    assert verification["iou_prediction_max_error"] < 1e-4
    assert verification["gate"]["min_mean_iou"] == 0.999


def test_a_mode_outside_its_gate_is_not_written(exported):
    _, paths = exported
    assert "fp16" not in paths
    assert "mean mask IoU" in paths["rejected"]["fp16"]


def test_unknown_mode():
    with pytest.raises(ExportError, match="Unknown SAM decoder modes"):
        sam_export.export_sam("unused", "unused", modes=("int4",))


def test_prompt_set_is_fixed_and_inside_the_frame():
    coords, labels = sam_export.prompt_set((64, 96), 3, 8)
    again, _ = sam_export.prompt_set((64, 96), 3, 8)
    np.testing.assert_array_equal(coords, again)
    assert coords.shape == (8, 5, 2) and labels.shape == (8, 5)
    used = labels >= 0
    assert (coords[used][:, 0] <= 96).all() and (coords[used][:, 1] <= 64).all()
    # box corners come in order
    boxes = labels[:, :, None] == np.array([2, 3])
    assert boxes[..., 0].sum() == boxes[..., 1].sum() == 4


def test_decoder_graph_is_static_builtin_and_rank_4(exported):
    _, paths = exported
    graph = _metadata(paths["fp32"])["graph"]
    assert graph["max_tensor_rank"] <= 4
    ops = set(graph["op_histogram"])
    assert not {op for op in ops if "FLEX" in op or "CUSTOM" in op}
    # no run-time shape plumbing: the graph is static
    assert not ops & {"SHAPE", "GATHER", "PACK", "UNPACK", "REDUCE_PROD"}
