"""Class-map scores against hand-counted references and transformers'."""

import numpy as np
import pytest

from edge_backbones.core.segmentation_metrics import (
    IGNORE_INDEX,
    ConfusionMatrix,
    mask_agreement,
    reduce_labels,
)


def test_mask_agreement_counts_pixels():
    a = np.array([[0, 1], [2, 2]], np.uint8)
    b = np.array([[0, 1], [2, 0]], np.uint8)
    assert mask_agreement(a, b) == 0.75
    assert mask_agreement(a, a) == 1.0
    with pytest.raises(ValueError, match="shapes"):
        mask_agreement(a, b[:1])


def test_iou_by_hand():
    target = np.array([[0, 0, 1, 1], [2, 2, 255, 255]])
    predicted = np.array([[0, 1, 1, 1], [2, 0, 0, 2]])
    matrix = ConfusionMatrix(4).add(predicted, target)
    # class 0: hit 1, union 3 (2 true + 2 predicted - 1); class 1: 2 / 3;
    # class 2: 1 / 2; class 3 absent; the 255 pixels are not counted
    np.testing.assert_allclose(
        matrix.per_class_iou()[:3], [1 / 3, 2 / 3, 1 / 2]
    )
    assert np.isnan(matrix.per_class_iou()[3])
    assert matrix.mean_iou() == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert matrix.pixel_accuracy() == pytest.approx(4 / 6)
    assert matrix.summary()["pixels"] == 6


def test_accumulates_over_images_like_one_big_image():
    rng = np.random.default_rng(0)
    maps = [rng.integers(0, 5, (2, 7, 9)) for _ in range(3)]
    one = ConfusionMatrix(5)
    for predicted, target in zip(*maps[:2], strict=True):
        one.add(predicted, target)
    whole = ConfusionMatrix(5).add(maps[0], maps[1])
    np.testing.assert_array_equal(one.counts, whole.counts)


def test_matches_evaluate_style_reference():
    # the formula of the `evaluate` library's mean_iou, written out
    rng = np.random.default_rng(1)
    target = rng.integers(0, 6, (40, 50))
    target[:3] = IGNORE_INDEX
    predicted = np.where(rng.random((40, 50)) < 0.7, target, 2) % 6
    kept = target != IGNORE_INDEX
    ious = []
    for c in range(6):
        p, t = predicted[kept] == c, target[kept] == c
        if (p | t).any():
            ious.append((p & t).sum() / (p | t).sum())
    matrix = ConfusionMatrix(6).add(predicted, target)
    assert matrix.mean_iou() == pytest.approx(np.mean(ious))


def test_out_of_range_ids_are_refused():
    with pytest.raises(ValueError, match=r"\[7\]"):
        ConfusionMatrix(5).add(np.zeros((2, 2)), np.full((2, 2), 7))


def test_reduce_labels_as_transformers():
    transformers = pytest.importorskip("transformers")
    labels = np.array([[0, 1, 2], [150, 255, 3]], np.uint8)
    processor = transformers.SegformerImageProcessor(do_reduce_labels=True)
    expected = processor.reduce_label(labels.copy())
    np.testing.assert_array_equal(reduce_labels(labels), expected)


def _write(path, array):
    import cv2

    cv2.imwrite(str(path), array)
    return path


def test_labels_are_checked_before_any_work(tmp_path):
    from edge_backbones.core.segmentation_labels import (
        check_labels,
        read_label,
    )
    from edge_backbones.errors import InputError

    photos = tmp_path / "photos"
    labels = tmp_path / "labels"
    photos.mkdir()
    labels.mkdir()
    photo = _write(photos / "a.jpg", np.zeros((6, 8, 3), np.uint8))
    mask = np.full((6, 8), 2, np.uint8)
    mask[0] = 255
    _write(labels / "a.png", mask)
    assert check_labels(labels, [photo], 3) == {
        str(photo): str(labels / "a.png")
    }
    np.testing.assert_array_equal(read_label(labels / "a.png"), mask)
    # ADE20K's reduce_labels: 2 -> 1, 255 stays ignored
    assert read_label(labels / "a.png", True)[1, 0] == 1
    with pytest.raises(InputError, match=r"\[2\] outside"):
        check_labels(labels, [photo], 2)
    _write(labels / "a.png", np.zeros((5, 8), np.uint8))
    with pytest.raises(InputError, match="is 8x5 but its photo"):
        check_labels(labels, [photo], 3)
    other = _write(photos / "b.jpg", np.zeros((6, 8, 3), np.uint8))
    with pytest.raises(InputError, match="has no label mask.*b.png"):
        check_labels(labels, [other], 3)
