"""Calibration photos and the arrays built from them."""

import hashlib
import json
import re
import warnings

import cv2
import numpy as np
import pytest

from edge_backbones.core.image_sets import (
    MANIFEST_SCHEMA,
    MIN_CALIBRATION_IMAGES,
    CalibrationWarning,
)
from edge_backbones.errors import CalibrationError
from edge_backbones.exporter.calibration import load_photos, preprocessed
from edge_backbones.runtime.preprocess import load_image

RAW = {"pixels_in_graph": True}  # uint8 pixels out: exact values to check
IMAGENET = {
    "scale": 1 / 255,
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
}
LICENSES = {
    "Public-Domain",
    "CC0-1.0",
    "CC-BY-4.0",
    "CC-BY-SA-3.0",
    "CC-BY-SA-4.0",
    "LGPL-3.0",
    "GPL-2.0-or-later",
}


def _photos(folder, count, size=(24, 32)):
    rng = np.random.default_rng(count)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f"img_{i:02d}.png"), image)
    return folder


@pytest.fixture(scope="module")
def manifest(calibration_dir):
    with open(calibration_dir / "manifest.json", encoding="utf-8") as f:
        return json.load(f)


def test_shipped_manifest_lists_real_licensed_photos(calibration_dir, manifest):
    assert manifest["schema"] == MANIFEST_SCHEMA
    photos = manifest["photos"]
    assert len(photos) >= 24
    notice = (calibration_dir / "LICENSES.md").read_text(encoding="utf-8")
    total = 0
    for photo in photos:
        path = calibration_dir / photo["file"]
        data = path.read_bytes()
        total += len(data)
        assert hashlib.sha256(data).hexdigest() == photo["sha256"], path
        image = load_image(path)
        assert image.shape == (photo["height"], photo["width"], 3), path
        assert max(image.shape[:2]) <= 640
        assert image.std() > 10, f"{path} looks blank"
        assert photo["license"] in LICENSES, photo["file"]
        assert photo["author"] and photo["source"]["package"]
        assert photo["file"] in notice, "LICENSES.md must credit each photo"
    assert total < 4 * 2**20
    listed = {p["file"] for p in photos}
    on_disk = {p.name for p in calibration_dir.glob("*.jpg")}
    assert on_disk == listed


def test_shipped_split_is_disjoint_and_loads_without_warning(
    calibration_dir, manifest
):
    with warnings.catch_warnings():
        warnings.simplefilter("error", CalibrationWarning)
        calib = load_photos(calibration_dir)
    names = {
        split: {p["file"] for p in manifest["photos"] if p["split"] == split}
        for split in ("calibration", "holdout")
    }
    got_calib = {p.rsplit("/", 1)[-1] for p in calib.calibration}
    got_holdout = {p.rsplit("/", 1)[-1] for p in calib.holdout}
    assert got_calib == names["calibration"]
    assert got_holdout == names["holdout"]
    assert len(got_holdout) >= 6
    assert len(got_calib) >= MIN_CALIBRATION_IMAGES
    assert not got_calib & got_holdout
    # a manifest file works as the source too, with the same split
    same = load_photos(calibration_dir / "manifest.json")
    assert same.calibration == calib.calibration


def test_max_images_is_a_seeded_sample_of_calibration(calibration_dir):
    full = load_photos(calibration_dir)
    with pytest.warns(CalibrationWarning, match="max_images=5 keeps 5 of 24"):
        a = load_photos(calibration_dir, seed=3, max_images=5)
    with pytest.warns(CalibrationWarning):
        b = load_photos(calibration_dir, seed=3, max_images=5)
        c = load_photos(calibration_dir, seed=4, max_images=5)
    assert a.calibration == b.calibration
    assert len(a.calibration) == 5
    assert set(a.calibration) <= set(full.calibration)
    assert a.calibration != c.calibration
    assert a.holdout == full.holdout  # verification photos are never cut


def test_folder_split_is_deterministic_per_seed(tmp_path):
    folder = _photos(tmp_path / "photos", 12)
    with pytest.warns(CalibrationWarning):
        splits = [load_photos(folder, seed=s) for s in (0, 0, 1)]
    first, again, other = splits
    assert first.calibration == again.calibration
    assert first.holdout == again.holdout
    assert len(first.holdout) == 3  # 25 % of 12
    assert sorted(first.calibration + first.holdout) == sorted(
        str(p) for p in folder.glob("*.png")
    )
    assert first.holdout != other.holdout
    with pytest.warns(CalibrationWarning):
        none_asked = load_photos(folder, holdout_fraction=0.0)
    assert len(none_asked.holdout) == 1  # something must verify the export


def test_grayscale_rgba_and_16bit_pngs_become_rgb_inputs(tmp_path):
    folder = tmp_path / "odd"
    folder.mkdir()
    cv2.imwrite(str(folder / "gray.png"), np.full((20, 30), 100, np.uint8))
    bgra = np.zeros((20, 30, 4), np.uint8)
    bgra[..., :] = (10, 20, 30, 0)  # B, G, R, fully transparent
    cv2.imwrite(str(folder / "rgba.png"), bgra)
    cv2.imwrite(str(folder / "deep.png"), np.full((20, 30), 257 * 200, "u2"))
    with pytest.warns(CalibrationWarning):
        calib = load_photos(folder, holdout_fraction=0.0)
    pixels, normalized = {}, {}
    for split in ("calibration", "holdout"):
        paths = calib.paths(split)
        raw = preprocessed(calib, split, RAW, (8, 12))
        floats = preprocessed(calib, split, IMAGENET, (8, 12))
        for path, array, scaled in zip(paths, raw, floats, strict=True):
            assert array.shape == (8, 12, 3) and array.dtype == np.uint8
            assert scaled.shape == (8, 12, 3) and scaled.dtype == np.float32
            name = path.rsplit("/", 1)[-1]
            pixels[name] = array[0, 0].tolist()
            normalized[name] = scaled[3, 5]
    assert pixels == {
        "gray.png": [100, 100, 100],
        "rgba.png": [30, 20, 10],  # RGB order, alpha dropped
        "deep.png": [200, 200, 200],
    }
    expected = (100 / 255 - np.array(IMAGENET["mean"])) / IMAGENET["std"]
    np.testing.assert_allclose(normalized["gray.png"], expected, rtol=1e-5)


def test_too_few_calibration_photos_warn_with_counts(tmp_path):
    folder = _photos(tmp_path / "few", 6)
    with pytest.warns(CalibrationWarning, match="Only 4 calibration images"):
        calib = load_photos(folder)
    assert len(calib.calibration) == 4


# each message names its reason; the folder path (which every message
# holds, and which names the case here) is not matched
NO_PHOTOS_REASONS = {
    "empty": "No image files in .* \\(looked for \\.jpg",
    "missing": "No calibration folder at ",
    "non_images": "No image files in .* \\(looked for \\.jpg",
    "a_file": "is a file, not a folder of photos",
    "one_photo": "holds 1 image .* at least 2 are needed",
}


@pytest.mark.parametrize("kind", sorted(NO_PHOTOS_REASONS))
def test_no_photos_raise_calibration_error(tmp_path, kind):
    folder = tmp_path / kind
    if kind == "a_file":
        folder.write_text("not a folder")
    elif kind == "one_photo":
        _photos(folder, 1)
    elif kind != "missing":
        folder.mkdir()
    if kind == "non_images":
        (folder / "notes.txt").write_text("no photos here")
    with pytest.raises(CalibrationError) as info:
        load_photos(folder)
    message = str(info.value).replace(str(folder), "<folder>")
    assert re.search(NO_PHOTOS_REASONS[kind], message), message


def test_corrupt_file_is_named(tmp_path):
    folder = _photos(tmp_path / "photos", 4)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalibrationWarning)
        with pytest.raises(CalibrationError) as info:
            load_photos(folder)
    assert re.search(
        r"1 calibration file\(s\) .* cannot be decoded: "
        r".*broken\.jpg",
        str(info.value),
    ), info.value


def test_bad_manifest_entries_are_named(tmp_path):
    folder = _photos(tmp_path / "photos", 3)
    photos = [
        {"file": "img_00.png", "split": "calibration", "license": "CC0-1.0"},
        {"file": "img_01.png", "split": "holdout"},
        {"file": "gone.png", "split": "calibration", "license": "CC0-1.0"},
        {"file": "img_02.png", "split": "test", "license": "CC0-1.0"},
    ]
    (folder / "manifest.json").write_text(json.dumps({"photos": photos}))
    with pytest.raises(CalibrationError) as info:
        load_photos(folder)
    message = str(info.value)
    assert "3 problem(s)" in message  # img_00.png is fine
    for expected in ("img_01.png: no", "gone.png: file missing", "'test'"):
        assert expected in message


def test_unknown_split_name(calibration_dir):
    with pytest.warns(CalibrationWarning):
        calib = load_photos(calibration_dir, max_images=1)
    with pytest.raises(CalibrationError, match="'train'"):
        preprocessed(calib, "train", RAW, (8, 8))
