"""Images far larger than any model input: the size is read from the file's
header, a JPEG is decoded reduced and any other format fails with its name,
before the pixels are decoded (a 20000 x 20000 PNG of a few KB would take
1.2 GB and seconds to decode whole)."""

import os
import struct
import subprocess
import sys
import zlib

import cv2
import numpy as np
import pytest

from edge_backbones.errors import CalibrationError, InputError
from edge_backbones.exporter.calibration import load_photos
from edge_backbones.runtime.preprocess import image_dimensions, load_image
from tests.conftest import REPO_ROOT


def _chunk(kind, payload):
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", crc)
    )


def write_flat_png(path, width, height):
    """A valid single-colour grayscale PNG, streamed: small on disk and in
    memory however large its pixel count."""
    compressor = zlib.compressobj(9)
    row = b"\0" * (width + 1)  # filter byte + gray pixels
    parts = [compressor.compress(row) for _ in range(height)]
    idat = b"".join(parts) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(_chunk(b"IHDR", header))
        f.write(_chunk(b"IDAT", idat))
        f.write(_chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def huge_png(tmp_path_factory):
    path = tmp_path_factory.mktemp("huge") / "huge.png"
    write_flat_png(path, 20000, 20000)
    return path


def test_header_sizes_of_every_format(tmp_path):
    image = np.zeros((37, 53, 3), np.uint8)
    for suffix in (".png", ".jpg", ".bmp", ".webp"):
        ok, encoded = cv2.imencode(suffix, image)
        assert ok
        assert image_dimensions(encoded) == (53, 37), suffix
    assert image_dimensions(b"GIF89a") is None
    assert image_dimensions(b"\x89PNG\r\n\x1a\n") is None  # cut short


def test_huge_png_fails_before_decoding_with_small_peak(huge_png):
    assert os.path.getsize(huge_png) < 2 * 2**20
    code = (
        "import sys\n"
        "from edge_backbones.errors import InputError\n"
        "from edge_backbones.runtime.preprocess import load_image\n"
        "try:\n"
        f"    load_image({str(huge_png)!r})\n"
        "except InputError as exc:\n"
        "    print(exc, file=sys.stderr)\n"
        # VmHWM, not ru_maxrss: that keeps the forking parent's peak
        "    status = open('/proc/self/status').read().split('VmHWM:')\n"
        "    print(status[1].split()[0])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    assert "20000x20000" in proc.stderr and "huge.png" in proc.stderr
    peak_mb = int(proc.stdout.split()[-1]) / 1024
    # numpy + OpenCV alone are ~100 MB; a whole decode would be 1200+
    assert peak_mb < 300, peak_mb


def test_large_jpeg_is_decoded_reduced(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    image = cv2.resize(
        rng.integers(0, 255, (5, 8, 3), dtype=np.uint8), (160, 100)
    )
    path = tmp_path / "big.jpg"
    cv2.imwrite(str(path), image)
    full = load_image(path)
    assert full.shape == (100, 160, 3)
    # 16000 px: 1/2 is 4000 px, too many; 1/4 is 1000
    monkeypatch.setattr(
        sys.modules["edge_backbones.runtime.preprocess"],
        "MAX_IMAGE_PIXELS",
        1000,
    )
    reduced = load_image(path)
    assert reduced.shape == (25, 40, 3)
    # the same picture, at a quarter of the size
    expected = cv2.resize(full, (40, 25), interpolation=cv2.INTER_AREA)
    assert np.abs(reduced.astype(int) - expected).mean() < 6
    png = tmp_path / "big.png"
    cv2.imwrite(str(png), image)
    with pytest.raises(InputError, match=r"160x100 pixels"):
        load_image(png)


def test_calibration_folder_names_the_huge_file(huge_png, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(3):
        cv2.imwrite(str(folder / f"p{index}.png"), np.zeros((8, 8, 3)))
    os.link(huge_png, folder / "huge.png")
    with pytest.raises(CalibrationError, match=r"huge\.png.*20000x20000"):
        load_photos(folder)
