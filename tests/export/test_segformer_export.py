"""A SegFormer checkpoint exports its segmenter: logits and classes by
name, class names in metadata, masks verified against the float model in
every mode and target."""

import json

import numpy as np
import pytest

from edge_backbones.errors import CheckpointError, InputError
from edge_backbones.exporter.pipeline import export
from edge_backbones.runtime.edge_model import EdgeModel
from edge_backbones.runtime.model_file import read_model_file

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

# a tiny SegFormer: four stages, 8-16 channels, one block each
TINY = {
    "hidden_sizes": [8, 16, 16, 16],
    "depths": [1, 1, 1, 1],
    "num_attention_heads": [1, 1, 1, 1],
    "sr_ratios": [4, 2, 1, 1],
    "decoder_hidden_size": 16,
}
NAMES = ["wall", "floor", "sky", "tree", "person"]
ALL = ("fp32", "fp16", "int8", "int8_mixed", "int16x8")
TARGETS = ("cpu", "npu", "npu_int8", "gpu")


def _save(folder, head=True):
    torch.manual_seed(0)
    config = transformers.SegformerConfig(
        **TINY, id2label=dict(enumerate(NAMES))
    )
    cls = (
        transformers.SegformerForSemanticSegmentation
        if head
        else transformers.SegformerModel
    )
    model = cls(config).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    model.save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return _save(tmp_path_factory.mktemp("segformer_tiny"))


@pytest.fixture(scope="module")
def exported(checkpoint, photos, tmp_path_factory):
    out = tmp_path_factory.mktemp("seg_artifacts")
    records = export(
        str(checkpoint),
        image_size=64,
        modes=",".join(ALL),
        targets=",".join(TARGETS),
        calibration=photos,
        out=out,
        name="seg",
        # random tiny weights on 64x64 photos: the cosine gates are the
        # backbones'; masks are gated by the registry's agreement gates
        thresholds={m: 0.9 for m in (*ALL, *TARGETS)},
        mask_thresholds={m: 0.9 for m in (*ALL, *TARGETS)},
    )
    return {r.mode: r for r in records}


@pytest.mark.matrix_stage
def test_every_mode_and_target_exports_the_segmenter(exported, capfd):
    assert sorted(exported) == sorted((*ALL, *TARGETS))
    for mode, record in exported.items():
        model = EdgeModel(record.path)
        metadata = json.loads(
            read_model_file(record.path).metadata["edge_backbones"]
        )
        task = metadata["task"]
        assert task["kind"] == "segmentation"
        assert task["class_names"] == NAMES and task["num_classes"] == 5
        masks = task["verification"]
        assert masks["mask_agreement"]["min"] >= masks["min_mask_agreement"]
        assert 0 <= masks["miou_vs_float"] <= 1
        x = np.zeros((1, 64, 64, 3), np.float32)
        outputs = model(x)
        assert outputs["logits"].shape == (1, 16, 16, 5), mode
        assert outputs["classes"].shape == (1, 16, 16), mode
        assert outputs["classes"].dtype == np.uint8, mode
        assert outputs["classes"].max() < 5


@pytest.mark.matrix_stage
def test_float_masks_agree_exactly(exported):
    for mode in ("fp32", "cpu"):
        masks = json.loads(
            read_model_file(exported[mode].path).metadata["edge_backbones"]
        )["task"]["verification"]
        assert masks["mask_agreement"]["min"] >= 0.99, mode


def test_task_backbone_exports_the_pyramid(checkpoint, tmp_path):
    (record,) = export(
        str(checkpoint), image_size=64, out=tmp_path, task="backbone"
    )
    model = EdgeModel(record.path)
    assert sorted(model.output_specs) == ["P1", "P2", "P3", "P4"]


def test_segmentation_of_a_head_less_checkpoint_is_refused(tmp_path):
    folder = _save(tmp_path / "encoder", head=False)
    with pytest.raises(CheckpointError, match="--task backbone"):
        export(str(folder), image_size=64, out=tmp_path / "out",
               task="segmentation")  # fmt: skip
    with pytest.raises(InputError, match="task"):
        export(str(folder), image_size=64, out=tmp_path / "out", task="seg")
