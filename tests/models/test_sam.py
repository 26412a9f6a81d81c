"""SAMBackbone (ViTDet + prompt encoder + mask decoder) vs transformers."""

import os

import keras
import numpy as np
import pytest

from edge_backbones.errors import CheckpointError
from edge_backbones.models.sam import SAMBackbone, SAMImageSegmenter
from edge_backbones.models.sam.sam_backbone import DECODER_INPUTS
from tests.tiny import save_tiny_sam_checkpoint, save_tiny_sam_model

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

TOLERANCE = 1e-4
SIZE, GRID = 64, 8
POINTS = np.array([[[10.0, 20.0], [40.0, 33.0], [5.0, 60.0]]], "float32")
LABELS = np.array([[1, 0, 1]])
BOX = np.array([[[12.0, 8.0, 50.0, 41.0]]], "float32")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("sam"))
    return path, save_tiny_sam_model(path)


@pytest.fixture(scope="module")
def sam(checkpoint):
    return SAMBackbone.from_preset(checkpoint[0])


@pytest.fixture(scope="module")
def image():
    return (
        np.random.default_rng(0)
        .normal(size=(1, SIZE, SIZE, 3))
        .astype("float32")
    )


def _mask_prompt():
    rng = np.random.default_rng(1)
    return rng.normal(size=(1, 4 * GRID, 4 * GRID)).astype("float32") * 3


def _reference(model, image, points, labels, box, mask, multimask):
    def tensor(value, nest=True):
        if value is None:
            return None
        return torch.tensor(value)[:, None] if nest else torch.tensor(value)

    with torch.no_grad():
        out = model(
            pixel_values=torch.from_numpy(image.transpose(0, 3, 1, 2)),
            input_points=tensor(points),
            input_labels=tensor(labels),
            input_boxes=tensor(box, nest=False),
            input_masks=tensor(mask),
            multimask_output=multimask,
        )
    return out.pred_masks[0, 0].numpy(), out.iou_scores[0, 0].numpy()


def _ours(sam, image, points, labels, box, mask, multimask, pad=0):
    """Prompts laid out as the static graph takes them: points, then `pad`
    "not a point" slots, then the box corners (labels 2, 3) or, without a
    box, one more "not a point" (where transformers pads too)."""
    coords = [] if points is None else list(points[0])
    kinds = [] if labels is None else list(labels[0])
    coords += [[0.0, 0.0]] * pad
    kinds += [-1] * pad
    if box is not None:
        coords += [box[0, 0, :2], box[0, 0, 2:]]
        kinds += [2, 3]
    else:
        coords.append([0.0, 0.0])
        kinds.append(-1)
    segmenter = SAMImageSegmenter(sam)
    out = segmenter.segment(
        image,
        np.asarray(coords, "float32")[None],
        np.asarray(kinds, "float32")[None],
        None if mask is None else mask[..., None],
        multimask=multimask,
    )
    return out["masks"][0].transpose(2, 0, 1), out["iou_predictions"][0]


CASES = {
    "points": (POINTS, LABELS, None, False),
    "one_point": (POINTS[:, :1], LABELS[:, :1], None, False),
    "box": (None, None, BOX, False),
    "points_and_box": (POINTS[:, :2], LABELS[:, :2], BOX, False),
    "points_and_mask": (POINTS, LABELS, None, True),
    "box_and_mask": (None, None, BOX, True),
}


@pytest.mark.parametrize("multimask", [True, False])
@pytest.mark.parametrize("case", sorted(CASES))
def test_masks_and_iou_match_transformers(
    checkpoint, sam, image, case, multimask
):
    points, labels, box, with_mask = CASES[case]
    mask = _mask_prompt() if with_mask else None
    expected_masks, expected_iou = _reference(
        checkpoint[1], image, points, labels, box, mask, multimask
    )
    masks, iou = _ours(sam, image, points, labels, box, mask, multimask)
    assert (
        masks.shape
        == expected_masks.shape
        == ((3 if multimask else 1), 4 * GRID, 4 * GRID)
    )
    # the masks are not ~0: a real comparison
    assert np.abs(expected_masks).max() > 0.5
    np.testing.assert_allclose(masks, expected_masks, atol=TOLERANCE)
    np.testing.assert_allclose(iou, expected_iou, atol=TOLERANCE)
    np.testing.assert_array_equal(masks > 0, expected_masks > 0)


def test_polynomial_sines_keep_parity_with_transformers(checkpoint, sam, image):
    """The MUL/ADD/SUB sines the int16x8 decoder is traced with: the same
    masks and IoU predictions as transformers' (points and a box)."""
    from edge_backbones.models.layers import polynomial_sin

    points, labels, box, _ = CASES["points_and_box"]
    expected_masks, expected_iou = _reference(
        checkpoint[1], image, points, labels, box, None, True
    )
    limit = sam.prompt_encoder.max_sin_argument()
    assert limit > 1.0  # several turns: the double-angle steps run
    with polynomial_sin(limit):
        masks, iou = _ours(sam, image, points, labels, box, None, True)
    np.testing.assert_allclose(masks, expected_masks, atol=TOLERANCE)
    np.testing.assert_allclose(iou, expected_iou, atol=TOLERANCE)


def test_polynomial_sin_is_the_same_maths():
    from edge_backbones.models.layers import polynomial_sin, sin_cos

    x = np.linspace(-30.0, 30.0, 10001, dtype="float32")
    with polynomial_sin(30.0):
        sin, cos = (np.asarray(t) for t in sin_cos(x))
    np.testing.assert_allclose(sin, np.sin(x.astype("float64")), atol=1e-5)
    np.testing.assert_allclose(cos, np.cos(x.astype("float64")), atol=1e-5)
    plain = np.asarray(sin_cos(x)[0])  # the SIN op again outside
    np.testing.assert_allclose(plain, np.sin(x), atol=1e-6)


def test_padding_slots_are_not_a_point(checkpoint, sam, image):
    """Extra -1 slots (the static graph's padding) are transformers'
    padding points: fed to transformers as points, same masks."""
    padded_points = np.concatenate([POINTS, np.zeros((1, 2, 2))], 1)
    padded_labels = np.concatenate([LABELS, -np.ones((1, 2), int)], 1)
    expected, expected_iou = _reference(
        checkpoint[1], image, padded_points.astype("float32"),
        padded_labels, None, None, True,
    )  # fmt: skip
    masks, iou = _ours(sam, image, POINTS, LABELS, None, None, True, pad=2)
    np.testing.assert_allclose(masks, expected, atol=TOLERANCE)
    np.testing.assert_allclose(iou, expected_iou, atol=TOLERANCE)


def test_decoder_model_is_the_same_maths(sam, image):
    decoder = sam.decoder_model(num_points=5)
    assert sorted(t.name for t in decoder.inputs) == sorted(DECODER_INPUTS)
    embeddings = np.asarray(sam.image_encoder(image))
    coords = np.concatenate([POINTS, np.zeros((1, 2, 2), "float32")], 1)
    labels = np.array([[1, 0, 1, -1, -1]], "float32")
    feed = {
        "point_coords": coords,
        "point_labels": labels,
        "mask_input": np.zeros((1, 4 * GRID, 4 * GRID, 1), "float32"),
        "has_mask_input": np.zeros((1, 1), "float32"),
    }
    whole = sam({"images": image, **feed})
    part = decoder({"image_embeddings": embeddings, **feed})
    np.testing.assert_allclose(
        np.asarray(part["masks"]), np.asarray(whole["masks"]), atol=1e-6
    )


def test_config_and_saving_round_trip(sam, image, tmp_path):
    restored = SAMBackbone.from_config(sam.get_config())
    assert restored.get_config() == sam.get_config()
    path = str(tmp_path / "sam.keras")
    sam.save(path)
    loaded = keras.saving.load_model(path)
    feed = {
        "images": image,
        "point_coords": POINTS,
        "point_labels": LABELS.astype("float32"),
        "mask_input": np.zeros((1, 4 * GRID, 4 * GRID, 1), "float32"),
        "has_mask_input": np.zeros((1, 1), "float32"),
    }
    np.testing.assert_allclose(
        np.asarray(loaded(feed)["masks"]),
        np.asarray(sam(feed)["masks"]),
        atol=1e-6,
    )


def test_preset_architecture_without_weights():
    sam = SAMBackbone.from_preset(
        "sam_base_sa1b",
        load_weights=False,
        image_shape=(64, 64, 3),
        hidden_size=32,
        num_layers=1,
        intermediate_dim=32,
        num_heads=2,
        global_attention_layer_indices=[0],
    )
    assert sam.embedding_shape == (4, 4, 256)
    assert sam.mask_decoder.num_mask_tokens == 4


def _edited(source, target, edit):
    os.makedirs(target)
    for name in ("config.json",):
        with (
            open(os.path.join(source, name)) as f,
            open(os.path.join(target, name), "w") as g,
        ):
            g.write(f.read())
    tensors = safetensors_numpy.load_file(
        os.path.join(source, "model.safetensors")
    )
    edit(tensors)
    safetensors_numpy.save_file(
        tensors, os.path.join(target, "model.safetensors")
    )
    return target


def test_bad_decoder_tensors_are_all_listed(checkpoint, tmp_path):
    def edit(tensors):
        del tensors["mask_decoder.iou_token.weight"]
        tensors["mask_decoder.upscale_conv1.bias"] = np.zeros(3, "float32")
        tensors["mask_decoder.extra"] = np.zeros(2, "float32")

    path = _edited(checkpoint[0], str(tmp_path / "bad"), edit)
    with pytest.raises(CheckpointError) as error:
        SAMBackbone.from_preset(path)
    message = str(error.value)
    assert "missing 1: mask_decoder.iou_token.weight" in message
    assert "unexpected 1: mask_decoder.extra" in message
    assert "mask_decoder.upscale_conv1.bias" in message


def test_encoder_only_checkpoint_is_refused(tmp_path):
    save_tiny_sam_checkpoint(str(tmp_path))
    with pytest.raises(CheckpointError, match="ViTDetBackbone.from_preset"):
        SAMBackbone.from_preset(str(tmp_path))
