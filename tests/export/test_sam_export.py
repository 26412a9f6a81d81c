"""`edge-backbones export` on a SamModel checkpoint: the encoder and the
mask decoder per mode, their task metadata and the decoder's gates."""

import json

import numpy as np
import pytest

from edge_backbones.core import modes as modes_lib
from edge_backbones.errors import InputError
from edge_backbones.exporter import sam as sam_export


def _metadata(out, stem):
    with open(out / f"{stem}.json") as f:
        return json.load(f)


def test_the_cli_exports_the_pair_in_each_mode(tiny_sam_export):
    _, out, code, stdout, stderr = tiny_sam_export
    assert code == 0
    assert "exporting the SAM pair" in stderr
    assert stdout.split() == [
        str(out / f"tiny_sam_64x64_{part}{mode}.tflite")
        for part in ("", "decoder_")
        for mode in ("fp32", "fp16")
    ]


def test_the_pair_records_what_ties_it(tiny_sam_export):
    checkpoint, out, *_ = tiny_sam_export
    digest = sam_export.checkpoint_digest(checkpoint)
    for mode in ("fp32", "fp16"):
        encoder = _metadata(out, f"tiny_sam_64x64_{mode}")["task"]
        decoder = _metadata(out, f"tiny_sam_64x64_decoder_{mode}")["task"]
        assert encoder["kind"] == "sam_encoder"
        assert decoder["kind"] == "sam_decoder"
        for task in (encoder, decoder):
            assert task["checkpoint_sha256"] == digest
            assert task["image_size"] == [64, 64]
            assert task["embedding_shape"] == [8, 8, 32]
    assert decoder["max_points"] == 4 and decoder["num_point_slots"] == 6
    assert decoder["mask_input_size"] == [32, 32]
    assert sorted(decoder["inputs"]) == sorted(
        ["image_embeddings", "point_coords", "point_labels", "mask_input",
         "has_mask_input"]
    )  # fmt: skip


def test_decoder_verification_and_gate_are_recorded(tiny_sam_export):
    _, out, *_ = tiny_sam_export
    meta = _metadata(out, "tiny_sam_64x64_decoder_fp32")
    verification = meta["task"]["prompt_verification"]
    assert verification["mask_iou"]["mean"] == pytest.approx(1.0, abs=1e-3)
    assert verification["mask_iou"]["worst"] >= 0.99
    # 4 held-out images (no photos: synthetic) x 8 prompts x 4 masks, each
    # prompt again refining its own mask
    assert verification["mask_iou"]["count"] == 256
    by_prompt = verification["mask_iou_by_prompt"]
    assert by_prompt["no_mask_input"]["count"] == 128
    assert by_prompt["mask_input"]["worst"] >= 0.99
    assert verification["iou_prediction_max_error"] < 1e-4
    # the gate is the registry's
    assert verification["gate"] == (
        modes_lib.sam_decoder_plans(["fp32"])["fp32"].gate()
    )
    assert meta["scheme"]["name"] == "fp32" and meta["mode"] == "fp32"
    fp16 = _metadata(out, "tiny_sam_64x64_decoder_fp16")
    assert fp16["scheme"]["name"] == "wf16"


def test_a_decoder_outside_its_gate_fails_each_gate():
    plan = modes_lib.sam_decoder_plans(["int8_mixed"])["int8_mixed"]
    passing = {
        "mask_iou": {"mean": 0.99, "worst": 0.96},
        "iou_prediction_max_error": 0.01,
    }
    assert sam_export._failed_gates(plan, passing) == []
    for key, value, named in (
        ("mean", 0.9705, "mean mask IoU 0.9705"),
        ("worst", 0.8263, "worst mask IoU 0.8263"),
    ):
        measured = {**passing, "mask_iou": {**passing["mask_iou"], key: value}}
        assert sam_export._failed_gates(plan, measured) == [named]
    measured = {**passing, "iou_prediction_max_error": 0.15}
    assert sam_export._failed_gates(plan, measured) == [
        "IoU-prediction error 0.15"
    ]


def test_the_decoder_modes_are_the_registrys_aliases():
    plans = modes_lib.sam_decoder_plans()
    assert list(plans) == ["fp32", "fp16", "cpu", "int8_mixed", "int8", "npu"]
    assert set(plans) <= set(modes_lib.names())
    # the decoder's float lists replace the backbones' (MiT's layer names)
    names = plans["int8_mixed"].plan.float_layer_names
    assert names and all(n.startswith("sam_mask_decoder/") for n in names)
    assert plans["int8_mixed"].float_outputs == ("iou_predictions",)
    assert plans["int8_mixed"].plan.ranges == "minmax"
    assert plans["npu"].plan.converter == "int16x8"
    with pytest.raises(InputError, match="not exported in"):
        modes_lib.sam_decoder_plans(["int8_io"])


def test_a_registry_decoder_table_of_no_alias_is_refused(tmp_path):
    from edge_backbones.errors import ExportError

    with open(modes_lib.REGISTRY_PATH) as f:
        text = f.read()
    path = tmp_path / "modes.toml"
    path.write_text(text + "\n[sam_decoder.int4]\nmin_mean_mask_iou = 0.9\n")
    with pytest.raises(ExportError, match=r"\[sam_decoder.int4\] names no"):
        modes_lib.load_registry(path)


def test_is_sam_checkpoint(tiny_sam_export, tmp_path):
    checkpoint, *_ = tiny_sam_export
    assert sam_export.is_sam_checkpoint(checkpoint)
    assert sam_export.is_sam_checkpoint("sam_base_sa1b")
    assert not sam_export.is_sam_checkpoint("vitdet_base")
    assert not sam_export.is_sam_checkpoint(str(tmp_path))


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


def test_decoder_graph_is_static_builtin_and_rank_4(tiny_sam_export):
    _, out, *_ = tiny_sam_export
    graph = _metadata(out, "tiny_sam_64x64_decoder_fp32")["graph"]
    assert graph["max_tensor_rank"] <= 4
    ops = set(graph["op_histogram"])
    assert not {op for op in ops if "FLEX" in op or "CUSTOM" in op}
    # no run-time shape plumbing: the graph is static
    assert not ops & {"SHAPE", "GATHER", "PACK", "UNPACK", "REDUCE_PROD"}


def test_a_calibrated_pair_decodes_its_photos_once(
    tiny_sam_export, calibration_dir, tmp_path, monkeypatch
):
    """The decoders calibrate on the embeddings `_prepare` made from the
    photos it decoded for the encoder: no second decode, no second graph."""
    from edge_backbones.exporter import calibration as calibration_lib
    from edge_backbones.exporter import graph as graph_lib
    from edge_backbones.exporter import pipeline

    decoded, splits, graphs, seen = [], {}, [], {}
    preprocess, preprocessed, serving_graph = (
        calibration_lib._preprocess,
        calibration_lib.preprocessed,
        graph_lib.serving_graph,
    )

    def counted_preprocess(path, *args):
        decoded.append(path)
        return preprocess(path, *args)

    def split_preprocessed(image_set, split, *args):
        splits.setdefault(split, []).append(
            preprocessed(image_set, split, *args)
        )
        return splits[split][-1]

    def counted_graph(*args, **kwargs):
        graphs.append(serving_graph(*args, **kwargs))
        return graphs[-1]

    def decoders(model, sam, modes, stem, out, work, calibration, *rest, **kw):
        seen["calibration"] = calibration
        return [], []

    monkeypatch.setattr(calibration_lib, "_preprocess", counted_preprocess)
    monkeypatch.setattr(calibration_lib, "preprocessed", split_preprocessed)
    monkeypatch.setattr(graph_lib, "serving_graph", counted_graph)
    # the encoder's and the decoder's conversions are not what is counted
    monkeypatch.setattr(pipeline, "_export_all", lambda plan, bench: ([], []))
    monkeypatch.setattr(sam_export, "export_decoders", decoders)
    pipeline.export(
        str(tiny_sam_export[0]),
        image_size=64,
        modes="int8_mixed",
        calibration=str(calibration_dir),
        max_images=4,
        out=str(tmp_path),
    )
    assert len(graphs) == 1
    assert len(decoded) == len(set(decoded))  # each photo once
    (images,) = splits["calibration"]  # one decode of the calibration split
    assert len(images) == 4
    # the float encoder's embeddings of those photos, in order
    calibration = np.concatenate(seen["calibration"])
    (want,) = graph_lib.reference_outputs(graphs[0], images).values()
    assert calibration.shape == want.shape
    np.testing.assert_allclose(calibration, want, rtol=1e-5, atol=1e-6)
