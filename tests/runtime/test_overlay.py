"""`run --overlay`: a segmenter's class map over its photo, with a legend."""

import argparse
import json

import cv2
import numpy as np
import pytest

from edge_backbones.errors import InputError
from edge_backbones.runtime import cli
from edge_backbones.runtime.overlay import (
    overlay_image,
    palette,
    top_classes,
)


def _run_cli(argv):
    parser = argparse.ArgumentParser()
    cli.add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_palette_is_fixed_and_distinct():
    colors = palette()
    assert colors.shape == (256, 3) and colors.dtype == np.uint8
    assert len({tuple(c) for c in colors}) == 256
    np.testing.assert_array_equal(colors[:3], [[0, 0, 0], [128, 0, 0],
                                               [0, 128, 0]])  # fmt: skip


def test_overlay_blends_the_class_colour_and_lists_top_classes():
    image = np.full((40, 60, 3), 200, np.uint8)
    classes = np.zeros((10, 15), np.uint8)
    classes[:, 5:] = 2  # two thirds class 2, one third class 0
    assert top_classes(classes) == [(2, pytest.approx(2 / 3)),
                                    (0, pytest.approx(1 / 3))]  # fmt: skip
    picture = overlay_image(image, classes, ["sky", "road", "tree"])
    assert picture.shape[0] >= 40 and picture.shape[1] > 60
    # nearest-neighbour upsampling: the class-2 area is exactly its colour
    # blended with the photo; the legend panel holds dark text
    expected = np.round(0.45 * 200 + 0.55 * palette()[2]).astype(np.uint8)
    np.testing.assert_array_equal(picture[20, 40], expected)
    legend = picture[:, 60:]
    assert (legend < 100).any()


@pytest.fixture(scope="module")
def segmenter_tflite(tmp_path_factory):
    from edge_backbones.models.mit import MiTBackbone
    from edge_backbones.models.segformer import (
        SegFormerBackbone,
        SegFormerImageSegmenter,
    )
    from tests.models.backbone_harness import float_tflite
    from tests.tiny import TINY_MIT_64

    config = {**TINY_MIT_64, "num_layers": 4, "max_drop_path_rate": 0.0,
              "patch_sizes": [7, 3, 3, 3], "strides": [4, 2, 2, 2]}  # fmt: skip
    segmenter = SegFormerImageSegmenter(
        SegFormerBackbone(MiTBackbone(**config), 8), num_classes=4
    )
    path = tmp_path_factory.mktemp("seg") / "segmenter.tflite"
    path.write_bytes(float_tflite(segmenter, (64, 64)))
    return path


PREPROCESSING = json.dumps({"mean": [0.485, 0.456, 0.406],
                            "std": [0.229, 0.224, 0.225]})  # fmt: skip


def test_run_writes_an_overlay(segmenter_tflite, tmp_path, capsys):
    photo = tmp_path / "photo.png"
    rng = np.random.default_rng(0)
    cv2.imwrite(str(photo), rng.integers(0, 256, (48, 80, 3), np.uint8))
    out = tmp_path / "overlay.png"
    code = _run_cli(["run", str(segmenter_tflite), str(photo), "--overlay",
                     str(out), "--preprocessing", PREPROCESSING])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "classes" in printed and "uint8" in printed
    picture = cv2.imread(str(out))
    assert picture.shape[1] > 80 and picture.shape[0] >= 48


def test_unwritable_overlay_is_refused_before_running(
    segmenter_tflite, tmp_path
):
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), np.zeros((8, 8, 3), np.uint8))
    missing = tmp_path / "no_such_folder" / "overlay.png"
    with pytest.raises(InputError, match="--overlay"):
        _run_cli(["run", str(segmenter_tflite), str(photo), "--overlay",
                  str(missing), "--preprocessing", PREPROCESSING])  # fmt: skip
    assert not missing.parent.exists()
    with pytest.raises(InputError, match="model file itself"):
        _run_cli(["run", str(segmenter_tflite), str(photo), "--overlay",
                  str(segmenter_tflite)])  # fmt: skip


def test_overlay_of_a_backbone_says_what_to_export(tiny, tmp_path):
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(InputError, match="no 'classes'"):
        _run_cli(["run", str(tiny["paths"]["f32_meta"]), str(photo),
                  "--overlay", str(tmp_path / "o.png")])  # fmt: skip
    assert not (tmp_path / "o.png").exists()
