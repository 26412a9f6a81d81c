"""Image preprocessing: the one implementation the runtime and export share.

Calibration, fidelity checks and the deployed runtime must feed a model the
same pixels, so all of them call `load_image` and `preprocess` from here.
The `preprocessing` dict they apply is the spec in
`edge_backbones.core.preprocessing`, which the exporter embeds in a model's
metadata. Only numpy and OpenCV are needed.
"""

import os
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias, cast

import cv2
import numpy as np
import numpy.typing as npt

from edge_backbones.core.preprocessing import validate_preprocessing
from edge_backbones.errors import InputError

__all__ = [
    "MAX_IMAGE_PIXELS",
    "image_dimensions",
    "load_image",
    "preprocess",
    "resize",
]

# what `load_image` takes: a path, or an RGB/grayscale/RGBA array
ImageLike: TypeAlias = str | os.PathLike[str] | npt.NDArray[Any]

# the most pixels a file is decoded to (as Pillow's MAX_IMAGE_PIXELS): 8192
# x 8192, 192 MB as RGB. A 0.9 MB PNG of 30000 x 30000 pixels would
# otherwise take 4.3 GB and minutes to decode before being resized to the
# model's input. Larger JPEGs are decoded reduced (1/2, 1/4 or 1/8 by
# libjpeg itself); other formats fail with the file's name and size.
MAX_IMAGE_PIXELS = 8192 * 8192
_REDUCED = {factor: f"IMREAD_REDUCED_COLOR_{factor}" for factor in (2, 4, 8)}


def load_image(image: ImageLike) -> npt.NDArray[np.uint8]:
    """A path or an array -> a uint8 RGB array of shape (H, W, 3).

    Files are decoded by OpenCV (BGR or grayscale, 8 or 16 bit), turned
    upright by their EXIF orientation as any viewer shows them, and
    converted to 8-bit RGB; an alpha channel is dropped. Arrays are
    taken as RGB (H, W, 3), grayscale (H, W) or (H, W, 1), or RGBA
    (H, W, 4), in uint8 (or uint16, scaled down to 8 bits).

    Raises:
        InputError: a missing or undecodable file, or an array of another
            dtype or shape.
    """
    if isinstance(image, (str, os.PathLike)):
        return _decode_file(os.fspath(image))
    array: npt.NDArray[Any] = np.asarray(image)
    if array.dtype == np.uint16:
        array = _to_uint8(array)
    if array.dtype != np.uint8:
        raise InputError(
            f"Image arrays must be uint8 RGB; got dtype {array.dtype} with "
            f"shape {array.shape}. Convert with e.g. "
            "`np.clip(x * 255, 0, 255).astype(np.uint8)` for 0-1 floats, or "
            "pass the file path instead."
        )
    return _to_rgb(array, channel_order="RGB", where="the array")


def _decode_file(path: str) -> npt.NDArray[np.uint8]:
    if not os.path.isfile(path):
        raise InputError(
            f"No image file at {path!r}. Check the path (a file, not a folder)."
        )
    # imread does not understand non-ASCII paths on every platform;
    # decoding the bytes does
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise InputError(
            f"Cannot read the image {path!r} ({exc}). Check that the file "
            "is readable by this user."
        ) from exc
    # not IMREAD_UNCHANGED: it ignores EXIF orientation, so a phone's
    # portrait photo would reach the model on its side
    flags = _decode_flags(path, data)
    try:
        decoded = cv2.imdecode(data, flags) if data.size else None
    except cv2.error:  # some codecs raise on malformed data instead
        decoded = None
    if decoded is None:
        raise InputError(
            f"OpenCV cannot decode {path!r} ({data.size} bytes): not an "
            "image, or truncated. Pass a JPEG/PNG/BMP/TIFF/WebP file."
        )
    if decoded.dtype == np.uint16:
        decoded = _to_uint8(decoded)
    elif decoded.dtype != np.uint8:
        raise InputError(
            f"{path!r} decodes to {decoded.dtype} pixels; only 8- and "
            "16-bit images are supported. Convert it to an 8-bit PNG/JPEG."
        )
    return _to_rgb(decoded, channel_order="BGR", where=repr(path))


def image_dimensions(data):
    """(width, height) from a PNG, JPEG, BMP or WebP header, without
    decoding the pixels; None for other formats or a header cut short."""
    data = bytes(data[:65536]) if len(data) > 65536 else bytes(data)
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
            return _be(data[16:20]), _be(data[20:24])
        if data[:2] == b"\xff\xd8":
            return _jpeg_dimensions(data)
        if data[:2] == b"BM" and len(data) >= 26:
            width = int.from_bytes(data[18:22], "little", signed=True)
            height = int.from_bytes(data[22:26], "little", signed=True)
            return abs(width), abs(height)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp_dimensions(data)
    except IndexError:
        return None
    return None


def _be(raw):
    return int.from_bytes(raw, "big")


def _jpeg_dimensions(data):
    at = 2
    while at + 9 < len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            at += 2
            continue
        # SOF0-SOF15 hold the frame size; C4, C8 and CC are other tables
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return _be(data[at + 7 : at + 9]), _be(data[at + 5 : at + 7])
        at += 2 + _be(data[at + 2 : at + 4])
    return None


def _webp_dimensions(data):
    chunk = data[12:16]
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        return width, int.from_bytes(data[27:30], "little") + 1
    if chunk == b"VP8 ":
        width = int.from_bytes(data[26:28], "little") & 0x3FFF
        return width, int.from_bytes(data[28:30], "little") & 0x3FFF
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def _decode_flags(path, data):
    """OpenCV's imdecode flags for the file; reduced for a JPEG above
    MAX_IMAGE_PIXELS, an InputError for any other image above it."""
    flags = cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH
    size = image_dimensions(data)
    if size is None or size[0] * size[1] <= MAX_IMAGE_PIXELS:
        return flags
    pixels = size[0] * size[1]
    if bytes(data[:2]) == b"\xff\xd8":
        for factor, name in _REDUCED.items():
            if pixels / factor**2 <= MAX_IMAGE_PIXELS:
                return getattr(cv2, name)
    raise InputError(
        f"{path!r} is {size[0]}x{size[1]} pixels ({pixels / 1e6:.0f} "
        f"Mpx), more than the {MAX_IMAGE_PIXELS / 1e6:.0f} Mpx an image "
        f"is decoded to (decoding it whole takes {pixels * 3 / 2**30:.1f}"
        " GiB). Downscale it first (a model input is far smaller), save "
        "it as JPEG (decoded reduced), or raise edge_backbones.runtime."
        "preprocess.MAX_IMAGE_PIXELS."
    )


def _to_uint8(array: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    # 65535 / 257 == 255: maps the 16-bit range onto the 8-bit one exactly
    return ((array.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _to_rgb(
    array: npt.NDArray[Any], channel_order: str, where: str
) -> npt.NDArray[np.uint8]:
    if array.ndim in (2, 3) and 0 in array.shape[:2]:
        raise InputError(
            f"{where} is empty (shape {array.shape}); an image needs at "
            "least one pixel. Check how it was cropped or decoded."
        )
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        return np.ascontiguousarray(np.repeat(array[..., None], 3, axis=-1))
    if array.ndim != 3 or array.shape[-1] not in (3, 4):
        raise InputError(
            f"{where} has shape {array.shape}; expected an image of shape "
            "(H, W, 3) RGB, (H, W) or (H, W, 1) grayscale, or (H, W, 4) "
            "RGBA. For a batch, pass the images one by one or as a list."
        )
    array = array[..., :3]
    if channel_order == "BGR":
        array = array[..., ::-1]
    return np.ascontiguousarray(array)


def _check_size(size: Sequence[int]) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in size)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"size must be (height, width); got {size!r}."
        ) from exc
    if height <= 0 or width <= 0:
        raise InputError(f"size must be positive; got {size!r}.")
    return height, width


def resize(
    image: npt.NDArray[np.uint8],
    policy: str,
    size: Sequence[int],
    interpolation: str = "linear",
) -> npt.NDArray[np.uint8]:
    """Resizes a uint8 RGB image to `size` = (H, W) under `policy`.

    "stretch" ignores the aspect ratio. "longest_side_pad" (Segment
    Anything) keeps it: the image is scaled to fit inside (H, W) and the
    rest is left for padding at the bottom and right. The returned array is
    not padded: callers pad in their own value space (see `preprocess`).
    """
    height, width = size
    flag = {
        "linear": cv2.INTER_LINEAR,
        "nearest": cv2.INTER_NEAREST,
        "area": cv2.INTER_AREA,
        "cubic": cv2.INTER_CUBIC,
    }[interpolation]
    in_height, in_width = image.shape[:2]
    if policy == "longest_side_pad":
        ratio = min(height / in_height, width / in_width)
        # SAM's ResizeLongestSide rounds half up
        height = min(height, int(in_height * ratio + 0.5))
        width = min(width, int(in_width * ratio + 0.5))
    if (in_height, in_width) == (height, width):
        return image
    resized = cv2.resize(image, (width, height), interpolation=flag)
    return cast("npt.NDArray[np.uint8]", resized)


def preprocess(
    image: ImageLike, preprocessing: Mapping[str, Any], size: Sequence[int]
) -> npt.NDArray[np.float32] | npt.NDArray[np.uint8]:
    """A path or array -> the (H, W, 3) array a model takes as input.

    With `pixels_in_graph` the model normalizes inside its graph, so this
    returns the resized uint8 RGB pixels. Otherwise it returns float32
    `(pixels * scale - mean) / std`. With "longest_side_pad" the padding
    (bottom/right) is zero after normalization, as Segment Anything pads:
    in pixel space that is the mean pixel, so a model that normalizes in
    its graph sees the same zeros.

    Raises:
        InputError: an unreadable image or a bad `size`.
        MetadataError: a malformed `preprocessing` dict.
    """
    spec = validate_preprocessing(preprocessing)
    height, width = _check_size(size)
    pixels = resize(
        load_image(image),
        spec["resize"],
        (height, width),
        spec["interpolation"],
    )
    if spec["color_order"] == "BGR":
        pixels = np.ascontiguousarray(pixels[..., ::-1])
    mean = np.asarray(spec["mean"], np.float32)
    out: npt.NDArray[np.float32] | npt.NDArray[np.uint8]
    if spec["pixels_in_graph"]:
        out = pixels
        mean_pixel = np.clip(np.round(mean / spec["scale"]), 0, 255)
        pad_value = mean_pixel.astype(out.dtype)
    else:
        std = np.asarray(spec["std"], np.float32)
        normalized = pixels.astype(np.float32) * np.float32(spec["scale"])
        normalized -= mean
        normalized /= std
        out = normalized
        pad_value = 0
    if out.shape[:2] != (height, width):
        padded = np.empty((height, width, 3), out.dtype)
        padded[...] = pad_value
        padded[: out.shape[0], : out.shape[1]] = out
        out = padded
    return out
