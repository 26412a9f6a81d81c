"""A SegFormer checkpoint exports its segmenter: logits and classes by
name, class names in metadata, masks verified against the float model in
every mode and target."""

import json

import numpy as np
import pytest

from edge_backbones.core.artifact import ArtifactMetadata
from edge_backbones.errors import CheckpointError, InputError
from edge_backbones.exporter.pipeline import export
from edge_backbones.runtime.edge_model import EdgeModel
from edge_backbones.runtime.model_file import read_model_file
from tests.tiny import TINY_SEGFORMER

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

NAMES = ["wall", "floor", "sky", "tree", "person"]
ALL = ("fp32", "fp16", "int8", "int8_mixed", "int16x8")
TARGETS = ("cpu", "npu", "npu_int8", "gpu")


def _save(folder, head=True):
    torch.manual_seed(0)
    config = transformers.SegformerConfig(
        **TINY_SEGFORMER, id2label=dict(enumerate(NAMES))
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
def exported(checkpoint, photos, labelled, tmp_path_factory):
    out = tmp_path_factory.mktemp("seg_artifacts")
    records = export(
        str(checkpoint),
        image_size=64,
        modes=",".join(ALL),
        targets=",".join(TARGETS),
        calibration=photos,
        labels=str(labelled["folder"]),
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


def _float_masks(checkpoint, photo_paths):
    """transformers' own class maps of the held-out photos at each photo's
    size (logits resized bilinearly, align_corners=False, then argmax)."""
    from edge_backbones.exporter.graph import model_preprocessing
    from edge_backbones.models.segformer import SegFormerImageSegmenter
    from edge_backbones.runtime.preprocess import preprocess

    segmenter = SegFormerImageSegmenter.from_preset(
        str(checkpoint), image_shape=(64, 64, 3)
    )
    spec = model_preprocessing(segmenter, False)
    model = transformers.SegformerForSemanticSegmentation.from_pretrained(
        checkpoint
    ).eval()
    masks = []
    for path in photo_paths:
        pixels = preprocess(path, spec, (64, 64))
        height, width = read_image_size(path)
        with torch.no_grad():
            logits = model(
                torch.from_numpy(np.asarray(pixels)[None]).permute(0, 3, 1, 2)
            ).logits
            resized = torch.nn.functional.interpolate(
                logits, (height, width), mode="bilinear", align_corners=False
            )
        masks.append(resized.argmax(1)[0].numpy().astype(np.uint8))
    return masks


def read_image_size(path):
    import cv2

    return cv2.imread(str(path)).shape[:2]


def _scores(predicted, labels, num_classes):
    """Mean IoU over the classes present and pixel accuracy, by hand."""
    hits = total = 0
    ious = []
    for c in range(num_classes):
        inter = union = 0
        for p, t in zip(predicted, labels, strict=True):
            kept = t != 255
            inter += np.sum((p == c) & (t == c) & kept)
            union += np.sum(((p == c) | (t == c)) & kept)
        if union:
            ious.append(inter / union)
    for p, t in zip(predicted, labels, strict=True):
        kept = t != 255
        hits += np.sum((p == t) & kept)
        total += np.sum(kept)
    return float(np.mean(ious)), hits / total, int(total)


@pytest.fixture(scope="module")
def labelled(checkpoint, photos, tmp_path_factory):
    """A labels folder of the held-out photos: transformers' own class maps
    with one seeded error (the top quarter of the first photo one class
    off) and the second photo's bottom rows ignored (255)."""
    import cv2

    from edge_backbones.exporter.calibration import calibration_set

    holdout = calibration_set(photos, 0, 0.25, 32).paths("holdout")
    predicted = _float_masks(checkpoint, holdout)
    labels = [p.copy() for p in predicted]
    wrong = labels[0]
    wrong[: wrong.shape[0] // 4] = (wrong[: wrong.shape[0] // 4] + 1) % 5
    labels[1][-10:] = 255
    folder = tmp_path_factory.mktemp("labels")
    for photo, mask in zip(holdout, labels, strict=True):
        stem = photo.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        cv2.imwrite(str(folder / f"{stem}.png"), mask)
    quarter = wrong.shape[0] // 4 * wrong.shape[1]
    return {
        "folder": folder,
        "predicted": predicted,
        "labels": labels,
        "seeded": quarter,
    }


# scores every mode's artifacts: the every-mode export is the matrix stage's
@pytest.mark.matrix_stage
def test_labels_give_true_miou_and_pixel_accuracy(exported, labelled):
    miou, accuracy, pixels = _scores(
        labelled["predicted"], labelled["labels"], 5
    )
    # the seeded error costs exactly its pixels' share of the accuracy
    assert accuracy == pytest.approx(1 - labelled["seeded"] / pixels)
    assert miou < 0.99
    for mode in ("fp32", "cpu"):
        record = exported[mode]
        scores = record.metadata["task"]["verification"]["labels"]
        assert scores["pixels"] == pixels
        assert scores["pixel_accuracy"] == pytest.approx(accuracy, abs=2e-3)
        assert scores["mean_iou"] == pytest.approx(miou, abs=5e-3)
        assert scores["source"] == str(labelled["folder"])
        assert scores["reduce_labels"] is False
        typed = ArtifactMetadata.from_dict(record.metadata)
        assert typed.task.verification.labels.mean_iou == scores["mean_iou"]
        assert typed.to_dict() == record.metadata
    # every artifact is scored; a lossy one no better than the float masks
    for mode, record in exported.items():
        scores = record.metadata["task"]["verification"]["labels"]
        assert 0 < scores["mean_iou"] <= miou + 5e-3, mode


def test_bad_labels_are_refused_before_converting(checkpoint, photos, tmp_path):
    folder = tmp_path / "labels"
    folder.mkdir()
    with pytest.raises(InputError, match="has no label mask"):
        export(str(checkpoint), image_size=64, calibration=photos,
               labels=str(folder), out=tmp_path / "out")  # fmt: skip
    with pytest.raises(InputError, match="exports a backbone"):
        export(str(checkpoint), image_size=64, calibration=photos,
               labels=str(folder), out=tmp_path / "out",
               task="backbone")  # fmt: skip
    with pytest.raises(InputError, match="no photos"):
        export(str(checkpoint), image_size=64, labels=str(folder),
               out=tmp_path / "out")  # fmt: skip
    assert not any((tmp_path / "out").glob("*.tflite"))


def _producer(path, output):
    """The op kind that writes a signature output."""
    from edge_backbones.exporter.quant_debug import op_outputs, output_nodes

    with open(path, "rb") as f:
        content = f.read()
    (tensor,) = output_nodes(content, [output])
    (op,) = [op for op, name in op_outputs(content) if name == tensor]
    return op


@pytest.mark.matrix_stage
def test_int8_mixed_keeps_the_registrys_segmenter_layers_float(exported):
    from edge_backbones.core.modes import segmenter_float_lists

    _, outputs = segmenter_float_lists("int8_mixed")
    assert "logits" in outputs
    record = exported["int8_mixed"]
    # the classifier's conv writes the float logits (int8: DEQUANTIZE)
    assert _producer(record.path, "logits") == "CONV_2D"
    # the metadata names the graph nodes the registry kept float
    assert record.metadata["scheme"]["float_layer_name_nodes"]


def test_a_registry_segmenter_table_is_checked(tmp_path):
    from edge_backbones.core import modes as modes_lib
    from edge_backbones.errors import ExportError

    with open(modes_lib.REGISTRY_PATH) as f:
        text = f.read()
    path = tmp_path / "modes.toml"
    for table, problem in (
        ("[segmenter.int4]\nfloat_outputs = []", "names no alias"),
        ("[segmenter.fp16]\nfloat_outputs = []", "int8 schemes only"),
        ("[segmenter.int8]\nfloat_output = []", "unknown key"),
        ("[segmenter.int8]\nfloat_outputs = 'logits'", "list of strings"),
    ):
        path.write_text(text + "\n" + table + "\n")
        with pytest.raises(ExportError, match=problem):
            modes_lib.load_registry(path)
