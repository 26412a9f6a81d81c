"""Image sets: a folder of photos or a `manifest.json`, split in two.

The manifest (the one in `calibration/` is the reference) lists each photo
with its licence and a fixed split: "calibration" photos set the int8
ranges, "holdout" photos are only ever used to compare a model with its
reference (the export's gate, the NPU numerics check, the runtime's parity
records). A folder without a manifest is split at random (seeded). The one
loader for all of them, so no caller checks numerics on calibration photos.

This module lists and splits paths; decoding is the caller's `decode`
(the runtime's `load_image`), so `core` stays free of the runtime.
"""

import dataclasses
import json
import os
import warnings
from collections.abc import Callable, Iterable

import numpy as np

from edge_backbones.errors import CalibrationError, InputError

__all__ = [
    "CalibrationSet",
    "CalibrationWarning",
    "SPLITS",
    "IMAGE_SUFFIXES",
    "MANIFEST_NAME",
    "MANIFEST_SCHEMA",
    "MIN_CALIBRATION_IMAGES",
    "load_calibration_set",
]

MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA = "edge_backbones.calibration/1"
SPLITS = ("calibration", "holdout")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

# TFLite's post-training quantization guide asks for ~100-500 representative
# samples for a production model. Below 16, min/max ranges are set by a
# handful of scenes, so one odd photo moves every activation scale; 16 is
# the floor we accept without a warning (the shipped set has 24).
MIN_CALIBRATION_IMAGES = 16
PRODUCTION_CALIBRATION_IMAGES = (100, 500)


class CalibrationWarning(UserWarning):
    """Calibration will run, but on fewer photos than we recommend."""


@dataclasses.dataclass
class CalibrationSet:
    """Image paths split into `calibration` and `holdout` (disjoint).

    Attributes:
        calibration: paths the converter calibrates on.
        holdout: paths kept out of calibration, to verify exported models.
        source: the folder or manifest the set was loaded from.
    """

    calibration: list[str]
    holdout: list[str]
    source: str

    def paths(self, split: str) -> list[str]:
        """The paths of `split` ("calibration" or "holdout").

        Raises:
            CalibrationError: an unknown split.
        """
        if split not in SPLITS:
            raise CalibrationError(
                f"Unknown split {split!r}; use one of {list(SPLITS)}."
            )
        paths: list[str] = getattr(self, split)
        return paths


def load_calibration_set(
    source: str | os.PathLike[str],
    seed: int = 0,
    holdout_fraction: float = 0.25,
    max_images: int | None = None,
    decode: Callable[[str], object] | None = None,
) -> CalibrationSet:
    """Loads a folder of photos or a manifest into a `CalibrationSet`.

    Args:
        source: a folder (its `manifest.json` is used when present,
            otherwise every image file under it) or a manifest file.
        seed: seeds the random split of a folder without a manifest, and
            the sample drawn when `max_images` is set.
        holdout_fraction: the share of a manifest-less folder held out
            (at least one photo). A manifest's own split always wins, so
            the held-out photos stay the same on every machine.
        max_images: calibrate on a seeded sample of at most this many
            photos; the held-out split is kept whole. A sample below
            `MIN_CALIBRATION_IMAGES` warns too: too few photos leave
            activation ranges that the held-out photos fall outside.
        decode: path -> image, raising InputError on a broken file
            (`edge_backbones.runtime.preprocess.load_image`). Given, every
            chosen file is decoded once here, so a broken photo fails now
            with its name rather than halfway through a conversion.

    Warns (`CalibrationWarning`) when fewer than `MIN_CALIBRATION_IMAGES`
    photos are left to calibrate on.

    Raises:
        CalibrationError: no usable photos, a broken manifest or photo, or
            a split that leaves nothing to calibrate on.
    """
    _check_sampling(holdout_fraction, max_images)
    source = os.fspath(source)
    manifest = _find_manifest(source)
    if manifest is not None:
        calibration, holdout = _read_manifest(manifest)
    else:
        calibration, holdout = _split_folder(source, seed, holdout_fraction)
    if not calibration:
        raise CalibrationError(
            f"{source!r} leaves no photo for calibration (all "
            f"{len(holdout)} are held out). Mark more photos "
            '"calibration" in the manifest, or add photos.'
        )
    found = len(calibration)
    if max_images is not None and found > max_images:
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.choice(found, max_images, replace=False))
        calibration = [calibration[i] for i in keep]
    if len(calibration) < MIN_CALIBRATION_IMAGES:
        _warn_few(len(calibration), found, max_images, source)
    if decode is not None:
        _check_decodable(calibration + holdout, source, decode)
    return CalibrationSet(calibration, holdout, source)


def _check_sampling(holdout_fraction: float, max_images: int | None) -> None:
    if not 0.0 <= holdout_fraction < 1.0:
        raise CalibrationError(
            f"holdout_fraction must be in [0, 1); got {holdout_fraction!r}. "
            "0.25 holds out a quarter of the photos."
        )
    if max_images is not None and (
        isinstance(max_images, bool)
        or not isinstance(max_images, int)
        or max_images < 1
    ):
        raise CalibrationError(
            f"max_images must be a positive integer or None; got "
            f"{max_images!r}."
        )


def _warn_few(
    kept: int, found: int, max_images: int | None, source: str
) -> None:
    low, high = PRODUCTION_CALIBRATION_IMAGES
    cut = (
        f" (max_images={max_images} keeps {kept} of {found})"
        if found > kept
        else ""
    )
    warnings.warn(
        f"Only {kept} calibration images{cut} from "
        f"{source!r}; at least {MIN_CALIBRATION_IMAGES} are recommended "
        f"(TFLite suggests ~{low}-{high} for production). int8 ranges "
        "set by so few photos clip inputs unlike them: add photos like "
        "the deployment's, or raise max_images.",
        CalibrationWarning,
        # the caller of load_calibration_set, as before this helper
        stacklevel=3,
    )


def _find_manifest(source: str) -> str | None:
    if os.path.isfile(source):
        if source.lower().endswith(".json"):
            return source
        raise CalibrationError(
            f"{source!r} is a file, not a folder of photos or a "
            f"{MANIFEST_NAME}. Pass the folder that holds the photos."
        )
    if not os.path.isdir(source):
        raise CalibrationError(
            f"No calibration folder at {source!r} (cwd {os.getcwd()!r}). "
            "Pass a folder of photos, e.g. the repository's calibration/."
        )
    path = os.path.join(source, MANIFEST_NAME)
    return path if os.path.isfile(path) else None


def _read_manifest(path: str) -> tuple[list[str], list[str]]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise CalibrationError(
            f"Cannot read the calibration manifest {path!r}: {exc}. Fix "
            "its JSON, or delete it to split the folder's photos at random."
        ) from exc
    photos = data.get("photos") if isinstance(data, dict) else None
    if not isinstance(photos, list) or not photos:
        raise CalibrationError(
            f'{path!r} has no "photos" list (schema {MANIFEST_SCHEMA!r}); '
            f"got {type(data).__name__} with keys "
            f"{sorted(data) if isinstance(data, dict) else []}."
        )
    root = os.path.dirname(os.path.abspath(path))
    splits: dict[str, list[str]] = {split: [] for split in SPLITS}
    problems: list[str] = []
    seen: set[str] = set()
    for i, photo in enumerate(photos):
        entry = photo if isinstance(photo, dict) else {}
        name = entry.get("file")
        if not isinstance(name, str) or not name:
            problems.append(f'photo #{i} has no "file"')
            continue
        if name in seen:
            problems.append(f"{name} is listed twice")
        seen.add(name)
        if entry.get("split") not in SPLITS:
            problems.append(
                f"{name}: split {entry.get('split')!r} is not one of "
                f"{list(SPLITS)}"
            )
        if not entry.get("license"):
            problems.append(f'{name}: no "license"')
        full = os.path.join(root, name)
        if not os.path.isfile(full):
            problems.append(f"{name}: file missing")
        elif entry.get("split") in SPLITS:
            splits[entry["split"]].append(full)
    if problems:
        raise CalibrationError(
            f"Calibration manifest {path!r} has {len(problems)} problem(s): "
            + "; ".join(problems)
            + ". Fix those entries (every photo needs a file that exists, a "
            'split "calibration" or "holdout", and a licence).'
        )
    return splits["calibration"], splits["holdout"]


def _split_folder(
    folder: str, seed: int, holdout_fraction: float
) -> tuple[list[str], list[str]]:
    paths = sorted(
        os.path.join(root, name)
        for root, dirs, names in os.walk(folder)
        for name in names
        if name.lower().endswith(IMAGE_SUFFIXES) and not name.startswith(".")
    )
    if not paths:
        raise CalibrationError(
            f"No image files in {folder!r} (looked for "
            f"{', '.join(IMAGE_SUFFIXES)}). Put photos like the "
            "deployment's there, or pass the repository's calibration/."
        )
    if len(paths) < 2:
        raise CalibrationError(
            f"{folder!r} holds 1 image ({paths[0]!r}); at least 2 are "
            "needed: one to calibrate, one held out to verify. Add photos."
        )
    count = round(len(paths) * holdout_fraction)
    count = min(len(paths) - 1, max(1, count))
    order = np.random.default_rng(seed).permutation(len(paths))
    held = set(order[:count].tolist())
    calibration = [p for i, p in enumerate(paths) if i not in held]
    holdout = [p for i, p in enumerate(paths) if i in held]
    return calibration, holdout


def _check_decodable(
    paths: Iterable[str], source: str, decode: Callable[[str], object]
) -> None:
    broken = []
    for path in paths:
        try:
            decode(path)
        except InputError as exc:
            broken.append(f"{path} ({exc})")
    if broken:
        raise CalibrationError(
            f"{len(broken)} calibration file(s) under {source!r} cannot be "
            "decoded: " + "; ".join(broken) + ". Delete or re-save them as "
            "JPEG/PNG (and drop them from the manifest, if there is one)."
        )
