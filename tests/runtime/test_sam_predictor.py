"""SamPredictor on an exported SAM pair: mapping, masks, typed errors."""

import types

import numpy as np
import pytest

from edge_backbones.errors import ImageNotSetError, InputError, MetadataError
from edge_backbones.runtime.sam_predictor import (
    SamPredictor,
    map_coordinates,
    resized_size,
)

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
sam_pil = pytest.importorskip(
    "transformers.models.sam.image_processing_pil_sam"
)

MAX_POINTS = 4  # the decoder export's default
# a non-square photo: the longest-side resize and the padding both matter
PHOTO_SHAPE = (50, 80, 3)


@pytest.fixture(scope="module")
def pair(tiny_sam_export):
    checkpoint, out, code, _, _ = tiny_sam_export
    assert code == 0
    return (
        str(checkpoint),
        str(out / "tiny_sam_64x64_fp32.tflite"),
        str(out / "tiny_sam_64x64_decoder_fp32.tflite"),
    )


@pytest.fixture(scope="module")
def sam(pair):
    from edge_backbones.models.sam import SAMBackbone

    return SAMBackbone.from_preset(pair[0])


@pytest.fixture(scope="module")
def photo():
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, PHOTO_SHAPE, dtype=np.uint8)


@pytest.fixture()
def predictor(pair, photo):
    predictor = SamPredictor(pair[1], pair[2])
    predictor.set_image(photo)
    return predictor


@pytest.mark.parametrize("original", [(50, 80), (80, 50), (64, 64), (7, 9)])
def test_coordinates_map_as_transformers_processor(original):
    coords = np.array([[0.0, 0.0], [3.5, 2.25], [original[1], original[0]]])
    expected = sam_pil._normalize_coordinates(64, coords, original)
    np.testing.assert_allclose(
        map_coordinates(coords, original, (64, 64)), expected, rtol=1e-6
    )
    processor = types.SimpleNamespace()
    expected_size = sam_pil.SamImageProcessorPil._get_preprocess_shape(
        processor, original, 64
    )
    assert resized_size(original, (64, 64)) == expected_size


def _keras_logits(
    sam, predictor, coords, labels, box=None, mask=None, multimask=True
):
    """The float Keras model on the same preprocessed photo and prompt."""
    from edge_backbones.models.sam import SAMImageSegmenter

    image = predictor.encoder.preprocess(predictor._last_pixels)
    slots = MAX_POINTS + 2
    point_coords = np.zeros((1, slots, 2), "float32")
    point_labels = -np.ones((1, slots), "float32")
    size, frame = predictor.original_size, predictor.input_size
    n = len(coords)
    point_coords[0, :n] = map_coordinates(coords, size, frame)
    point_labels[0, :n] = labels
    if box is not None:
        corners = np.reshape(box, (2, 2))
        point_coords[0, n : n + 2] = map_coordinates(corners, size, frame)
        point_labels[0, n : n + 2] = (2, 3)
    out = SAMImageSegmenter(sam).segment(
        image[None], point_coords, point_labels,
        None if mask is None else mask[None, ..., None], multimask,
    )  # fmt: skip
    return np.moveaxis(out["masks"][0], -1, 0), out["iou_predictions"][0]


@pytest.mark.parametrize("use_box", [False, True])
def test_predict_matches_the_keras_model(sam, predictor, use_box):
    points = np.array([[20.0, 10.0], [60.0, 40.0]])
    labels = np.array([1, 0])
    box = (10.0, 5.0, 70.0, 45.0) if use_box else None
    result = predictor.predict(points=points, labels=labels, box=box)
    expected, expected_iou = _keras_logits(sam, predictor, points, labels, box)
    assert result.masks.shape == (3, *PHOTO_SHAPE[:2])
    assert result.masks.dtype == bool
    np.testing.assert_allclose(result.low_res_logits, expected, atol=1e-4)
    np.testing.assert_allclose(result.scores, expected_iou, atol=1e-4)
    # fed back as a mask prompt, single-mask output
    again = predictor.predict(
        points=points, labels=labels, mask_input=result.low_res_logits[0],
        multimask=False,
    )  # fmt: skip
    expected, _ = _keras_logits(
        sam, predictor, points, labels, None, result.low_res_logits[0], False
    )
    assert again.low_res_logits.shape == expected.shape == (1, 32, 32)
    np.testing.assert_allclose(again.low_res_logits, expected, atol=1e-4)


def test_masks_upscale_as_transformers_post_process(predictor):
    logits = np.random.default_rng(0).normal(size=(3, 32, 32)) * 4
    logits = logits.astype("float32")
    processor = types.SimpleNamespace(pad_size={"height": 64, "width": 64})
    expected = sam_pil.SamImageProcessorPil.post_process_masks(
        processor, [logits[None]], [PHOTO_SHAPE[:2]],
        [resized_size(PHOTO_SHAPE[:2], (64, 64))], binarize=False,
    )[0][0].numpy()  # fmt: skip
    got = predictor.upscale_logits(logits)
    assert got.shape == expected.shape == (3, *PHOTO_SHAPE[:2])
    np.testing.assert_allclose(got, expected, atol=1e-4)


BAD_PROMPTS = {
    "outside": ({"points": [[81.0, 10.0]]}, InputError, "outside"),
    "negative": ({"points": [[-1.0, 10.0]]}, InputError, "outside"),
    "nan": ({"points": [[np.nan, 10.0]]}, InputError, "NaN or Inf"),
    "inf_box": ({"box": [0, 0, np.inf, 4]}, InputError, "NaN or Inf"),
    "no_prompt": ({}, InputError, "no prompt"),
    "too_many": (
        {"points": [[1.0, 1.0]] * (MAX_POINTS + 1)}, InputError, "at most 4"
    ),
    "reversed_box": ({"box": [30, 5, 10, 40]}, InputError, "x1 < x0"),
    "bad_label": (
        {"points": [[1.0, 1.0]], "labels": [2]}, InputError, "1 (foreground)"
    ),
    "mask_size": (
        {"points": [[1.0, 1.0]], "mask_input": np.zeros((16, 16))},
        InputError, "(32, 32)",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD_PROMPTS))
def test_bad_prompts_raise_and_the_predictor_stays_usable(predictor, case):
    kwargs, error, words = BAD_PROMPTS[case]
    with pytest.raises(error, match=__import__("re").escape(words)):
        predictor.predict(**kwargs)
    assert predictor.predict(points=[[10.0, 10.0]]).masks.shape[0] == 3


def test_predict_before_set_image(pair):
    predictor = SamPredictor(pair[1], pair[2])
    with pytest.raises(ImageNotSetError, match="set_image"):
        predictor.predict(points=[[1.0, 1.0]])


def test_a_pair_from_different_checkpoints_is_refused(pair, tmp_path):
    from edge_backbones.exporter.tflite_metadata import embed_metadata
    from edge_backbones.runtime.metadata import read_metadata
    from edge_backbones.runtime.model_file import read_model_file

    with open(pair[2], "rb") as f:
        content = f.read()
    metadata = read_metadata(pair[2], read_model_file(pair[2]))
    metadata["task"]["checkpoint_sha256"] = "0" * 64
    other = tmp_path / "other_decoder.tflite"
    other.write_bytes(embed_metadata(content, metadata))
    with pytest.raises(MetadataError, match="checkpoint_sha256"):
        SamPredictor(pair[1], str(other))
    # and two encoders (or swapped files) are not a pair either
    with pytest.raises(MetadataError, match="sam_decoder"):
        SamPredictor(pair[1], pair[1])


def test_segment_cli_writes_the_overlay(pair, photo, tmp_path, capsys):
    import cv2

    from edge_backbones.cli import main

    photo_path = str(tmp_path / "photo.png")
    cv2.imwrite(photo_path, cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    out = str(tmp_path / "mask.png")
    code = main([
        "segment", pair[1], pair[2], photo_path, "--point", "20,10",
        "--box", "10,5,70,45", "--out", out,
    ])  # fmt: skip
    assert code == 0
    picture = cv2.imread(out)
    assert picture.shape == PHOTO_SHAPE
    # the pixels of the best mask are tinted, the others are the photo's
    predictor = SamPredictor(pair[1], pair[2])
    predictor.set_image(photo)
    result = predictor.predict(points=[[20.0, 10.0]], box=(10, 5, 70, 45))
    mask = result.masks[int(np.argmax(result.scores))]
    original = cv2.cvtColor(photo, cv2.COLOR_RGB2BGR).astype(int)
    changed = np.abs(picture.astype(int) - original).sum(-1) > 0
    assert changed[mask].mean() > 0.9
    assert "saved" in capsys.readouterr().out
    # a bad prompt is a clean error (exit code 2), not a traceback
    assert main([
        "segment", pair[1], pair[2], photo_path, "--box", "30,5,10,40",
        "--out", out,
    ]) == 2  # fmt: skip
