import re

import cv2
import numpy as np
import pytest

from edge_backbones.errors import InputError, MetadataError
from edge_backbones.runtime.preprocess import load_image, preprocess

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (30, 50, 3), dtype=np.uint8)


def _write(path, array):
    assert cv2.imwrite(str(path), array)
    return path


def test_load_image_converts_files_to_rgb(tmp_path):
    bgr = _write(tmp_path / "bgr.png", RGB[..., ::-1])
    np.testing.assert_array_equal(load_image(bgr), RGB)
    # RGBA on disk is BGRA: the alpha channel is dropped
    bgra = np.concatenate([RGB[..., ::-1], RGB[..., :1]], axis=-1)
    np.testing.assert_array_equal(
        load_image(_write(tmp_path / "bgra.png", bgra)), RGB
    )
    gray = load_image(_write(tmp_path / "gray.png", RGB[..., 0]))
    assert gray.shape == (30, 50, 3)
    np.testing.assert_array_equal(gray[..., 2], RGB[..., 0])
    deep = RGB[..., ::-1].astype(np.uint16) * 257  # 8-bit k -> 16-bit 257k
    np.testing.assert_array_equal(
        load_image(_write(tmp_path / "deep.png", deep)), RGB
    )


def test_load_image_turns_photos_upright_by_exif(tmp_path):
    image = pytest.importorskip("PIL.Image")
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = 255  # left half white, as the sensor stored it
    exif = image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "portrait.jpg"
    image.fromarray(stored).save(path, exif=exif.tobytes(), quality=95)
    upright = load_image(path)
    # shown upright, the stored left half is the top half
    assert upright.shape == (40, 20, 3)
    assert upright[:18].min() > 200 and upright[22:].max() < 50


def test_load_image_arrays():
    np.testing.assert_array_equal(load_image(RGB), RGB)
    rgba = np.concatenate([RGB, RGB[..., :1]], axis=-1)
    np.testing.assert_array_equal(load_image(rgba), RGB)
    for gray in (RGB[..., 0], RGB[..., :1]):
        out = load_image(gray)
        assert out.shape == (30, 50, 3)
        np.testing.assert_array_equal(out[..., 1], RGB[..., 0])


@pytest.mark.parametrize(
    "bad, message",
    [
        (RGB.astype(np.float32), "uint8"),
        (RGB[..., :2], "(H, W, 3)"),
        (RGB[None], "(H, W, 3)"),
    ],
)
def test_load_image_rejects_bad_arrays(bad, message):
    with pytest.raises(InputError, match=re.escape(message)):
        load_image(bad)


def test_load_image_rejects_bad_files(tmp_path):
    with pytest.raises(InputError, match="No image file"):
        load_image(tmp_path / "missing.jpg")
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    with pytest.raises(InputError, match="cannot decode"):
        load_image(text)
    good = _write(tmp_path / "good.jpg", RGB)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[:20])
    with pytest.raises(InputError, match="cannot decode"):
        load_image(truncated)


def test_load_image_unreadable_file_is_an_input_error(tmp_path, monkeypatch):
    path = _write(tmp_path / "locked.png", RGB)

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(np, "fromfile", denied)
    with pytest.raises(InputError, match="Permission denied"):
        load_image(path)


def test_stretch_normalizes_per_channel():
    spec = {"mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.5]}
    out = preprocess(RGB, spec, (16, 24))
    resized = cv2.resize(RGB, (24, 16), interpolation=cv2.INTER_LINEAR)
    expected = (resized / 255.0 - spec["mean"]) / spec["std"]
    assert out.dtype == np.float32 and out.shape == (16, 24, 3)
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_longest_side_pad_keeps_aspect_and_pads_bottom_right():
    spec = {"resize": "longest_side_pad", "mean": [0.5] * 3, "std": [0.5] * 3}
    out = preprocess(RGB, spec, (64, 64))
    # 30x50 -> longest side 64: 38.4 rows rounded half up -> 38
    resized = cv2.resize(RGB, (64, 38), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(
        out[:38], (resized / 255.0 - 0.5) / 0.5, atol=1e-5
    )
    # padding is zero after normalization, as Segment Anything pads
    assert not out[38:].any()


def test_pixel_input_pads_with_the_mean_pixel():
    spec = {
        "resize": "longest_side_pad",
        "pixels_in_graph": True,
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
    }
    out = preprocess(RGB, spec, (64, 64))
    assert out.dtype == np.uint8
    # (pad * scale - mean) / std is ~0 inside the model's graph too
    np.testing.assert_array_equal(out[38:].reshape(-1, 3)[0], [124, 116, 104])
    assert (out[38:] == out[38:].reshape(-1, 3)[0]).all()


def test_pixels_in_graph_and_bgr_order():
    out = preprocess(RGB, {"pixels_in_graph": True}, (30, 50))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, RGB)
    flipped = preprocess(
        RGB, {"pixels_in_graph": True, "color_order": "BGR"}, (30, 50)
    )
    np.testing.assert_array_equal(flipped, RGB[..., ::-1])


@pytest.mark.parametrize(
    "spec",
    [
        {"resize": "crop"},
        {"mean": [0.5, 0.5]},
        {"std": [1.0, 0.0, 1.0]},
        {"scale": -1},
        {"color_order": "BGRA"},
        # a typo must not leave std at its default of 1
        {"mean": [0.5, 0.5, 0.5], "stdev": [0.2, 0.2, 0.2]},
        {"pixels_in_graph": "false"},
    ],
)
def test_bad_preprocessing_specs(spec):
    with pytest.raises(MetadataError):
        preprocess(RGB, spec, (8, 8))
