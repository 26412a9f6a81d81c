"""Mask IoU, the score of a SAM mask against the float model's."""

import numpy as np
import pytest

from edge_backbones.core.mask_metrics import mask_iou, mask_iou_summary


def test_mask_iou_counts_overlap_over_union():
    a = np.zeros((2, 4, 4), bool)
    b = np.zeros((2, 4, 4), bool)
    a[0, :2] = True  # 8 pixels
    b[0, 1:3] = True  # 8 pixels, 4 shared -> 4 / 12
    a[1, 0, 0] = True  # one mask empty -> 0
    np.testing.assert_allclose(mask_iou(a, b), [4 / 12, 0.0])
    assert mask_iou(a[0], a[0]) == 1.0


def test_two_empty_masks_agree():
    empty = np.zeros((3, 5), bool)
    assert mask_iou(empty, empty) == 1.0


def test_shapes_must_match_and_summary():
    with pytest.raises(ValueError, match="shapes differ"):
        mask_iou(np.zeros((2, 2)), np.zeros((2, 3)))
    assert mask_iou_summary([1.0, 0.5, 0.75]) == {
        "mean": 0.75,
        "worst": 0.5,
        "count": 3,
    }
    with pytest.raises(ValueError):
        mask_iou_summary([])
