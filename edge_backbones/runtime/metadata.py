"""Reads the `edge_backbones` metadata of a .tflite and checks it.

The exporter embeds the JSON in the FlatBuffer's `metadata` list and writes
the same JSON beside the artifact (`x.tflite` -> `x.json`, plus `sha256` and
`size_bytes`). The embedded copy wins: it cannot drift from the model it is
in. A sidecar is only trusted when its hash matches the model file.
"""

import datetime
import hashlib
import json
import mmap
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

from edge_backbones.core.artifact import SCHEMA, SCHEMA_COMPILED, validate
from edge_backbones.errors import IntegrityError, MetadataError
from edge_backbones.runtime.model_file import TFLiteModelFile

if TYPE_CHECKING:
    from edge_backbones.runtime.edge_model import TensorSpec

__all__ = [
    "DIGEST_KEY",
    "DIGEST_PREFIX",
    "METADATA_NAME",
    "SCHEMA",
    "SCHEMA_COMPILED",
    "content_sha256",
    "digest_span",
    "file_sha256",
    "load_metadata",
    "read_metadata",
    "sidecar_path",
    "utc_now",
    "validate_metadata",
]

# the parsed JSON of an artifact's metadata (`SCHEMA`): "input", "outputs",
# "preprocessing", "export", ...
Metadata: TypeAlias = dict[str, Any]

METADATA_NAME = "edge_backbones"
# SCHEMA (an export) and SCHEMA_COMPILED (an export compiled ahead of time
# for an NPU, plus a `compiled` block) live with the contract in
# edge_backbones.core.artifact

# The embedded metadata records a sha256 of the whole .tflite, taken with
# the 64 hex digits of that very digest read as "0"s: every byte (weights,
# graph, quantization parameters, the rest of the metadata) is covered, it
# costs one pass over the file, and no FlatBuffer needs rebuilding to check
# it. The digest is the first key of the JSON, so its digits sit at a fixed
# offset from the payload's start; the exporter writes it there. Exports
# from before the digest start with the schema instead; a payload that
# starts with neither was damaged (a flipped bit in the key itself must
# not pass for an old export) or rewritten by another tool.
DIGEST_KEY = "content_sha256"
DIGEST_PREFIX = b'{"' + DIGEST_KEY.encode() + b'": "'
_LEGACY_PREFIX = b'{"schema": "'
_DIGEST_DIGITS = 64
_ZERO_DIGITS = b"0" * _DIGEST_DIGITS


def sidecar_path(model_path: str | os.PathLike[str]) -> str:
    """`x.tflite` -> `x.json`."""
    return os.path.splitext(os.fspath(model_path))[0] + ".json"


def utc_now() -> str:
    """The time stamp of every file we write: `2026-11-25T22:20:31+00:00`.

    ISO 8601 to the second with an explicit offset, which
    `datetime.fromisoformat` reads on every Python we support (a trailing
    "Z" only from 3.11) and the Android demo writes too. Artifacts exported
    before this format say "Z"; readers pass the string through.
    """
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.isoformat(timespec="seconds")


def digest_span(model_file: TFLiteModelFile) -> tuple[int, int] | None:
    """(start, end) in the file of the recorded digest's hex digits, or
    None if the embedded metadata records none (older exports)."""
    payload = model_file.metadata.get(METADATA_NAME)
    if payload is None or not payload.startswith(DIGEST_PREFIX):
        return None
    if len(payload) < len(DIGEST_PREFIX) + _DIGEST_DIGITS:
        return None
    start = model_file.metadata_spans[METADATA_NAME][0] + len(DIGEST_PREFIX)
    return start, start + _DIGEST_DIGITS


def content_sha256(data: bytes | mmap.mmap, span: tuple[int, int]) -> str:
    """Hex sha256 of `data` (bytes-like) with `span` read as "0" digits."""
    start, end = span
    digest = hashlib.sha256()
    with memoryview(data) as view:
        digest.update(view[:start])
        digest.update(_ZERO_DIGITS)
        digest.update(view[end:])
    return digest.hexdigest()


def _file_content_sha256(path: str, span: tuple[int, int]) -> str:
    # mmap: a 300 MB model is hashed without a second copy in memory
    with (
        open(path, "rb") as f,
        mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data,
    ):
        return content_sha256(data, span)


def read_metadata(
    model_path: str, model_file: TFLiteModelFile, verify: bool = True
) -> Metadata | None:
    """The metadata dict of `model_path`, or None if it has none.

    `model_file` is the parsed file (`model_file.read_model_file`), whose
    embedded entries are looked at first. With `verify`, the hash the
    metadata records is checked first (see `load_metadata`).

    Raises:
        IntegrityError: the file's bytes differ from the recorded hash.
        MetadataError: the metadata or its sidecar is unreadable or of
            another schema.
    """
    return load_metadata(model_path, model_file, verify)[0]


def load_metadata(
    model_path: str, model_file: TFLiteModelFile, verify: bool = True
) -> tuple[Metadata | None, str]:
    """(metadata or None, which integrity check ran).

    The check is "embedded-sha256" (the digest in the embedded metadata),
    "sidecar-sha256" (the sidecar's `sha256` of the file, for models whose
    embedded metadata records no digest, or that have only a sidecar),
    "none recorded", or "skipped" (`verify=False`).

    Raises:
        IntegrityError: the file's bytes differ from the recorded hash.
        MetadataError: the metadata or its sidecar is unreadable or of
            another schema.
    """
    embedded = model_file.metadata.get(METADATA_NAME)
    span = digest_span(model_file)
    sidecar = None
    if embedded is None or (verify and span is None):
        sidecar = _read_sidecar(model_path)
    integrity = "skipped"
    if verify:
        integrity = _verify(model_path, model_file, span, sidecar)
    if embedded is not None:
        where = f"the metadata embedded in {model_path!r}"
        return _parse(embedded, where), integrity
    return (None if sidecar is None else sidecar[1]), integrity


def _verify(
    model_path: str,
    model_file: TFLiteModelFile,
    span: tuple[int, int] | None,
    sidecar: tuple[str, Metadata] | None,
) -> str:
    if span is not None:
        payload = model_file.metadata[METADATA_NAME]
        offset = len(DIGEST_PREFIX)
        digits = payload[offset : offset + _DIGEST_DIGITS]
        recorded = digits.decode("ascii", errors="replace")
        actual = _file_content_sha256(model_path, span)
        if actual != recorded:
            raise IntegrityError(
                f"{model_path!r} is not the file that was exported: its "
                f"content hashes to {actual}, but its metadata recorded "
                f"{recorded} (a bad copy, a flipped bit on disk, or an "
                "edit). Copy or export it again; verify_integrity=False "
                "skips this check."
            )
        return "embedded-sha256"
    embedded = model_file.metadata.get(METADATA_NAME)
    if embedded is not None and not embedded.startswith(_LEGACY_PREFIX):
        # not JSON, or another schema: that error says more (a damaged key
        # breaks the artifact schema too, but "damaged" says it better)
        _parse(embedded, f"the metadata embedded in {model_path!r}", False)
        raise IntegrityError(
            f"The metadata embedded in {model_path!r} starts with "
            f"{embedded[:24]!r}, not with its {DIGEST_KEY} (nor, as older "
            "exports, with its schema): it was damaged or rewritten by "
            "another tool. Copy or export the model again; "
            "verify_integrity=False skips this check."
        )
    if sidecar is None or sidecar[1].get("sha256") is None:
        return "none recorded"
    path, metadata = sidecar
    actual = file_sha256(model_path)
    if actual != metadata["sha256"]:
        raise IntegrityError(
            f"The sidecar {path!r} describes another build: its sha256 is "
            f"{metadata['sha256']} but {model_path!r} hashes to {actual}. "
            "Copy the model again if it was damaged; if the sidecar is "
            "stale, export again or delete it."
        )
    return "sidecar-sha256"


def _read_sidecar(model_path: str) -> tuple[str, Metadata] | None:
    """(path, parsed sidecar) or None if there is none."""
    sidecar = sidecar_path(model_path)
    if not os.path.lexists(sidecar):
        return None
    if os.path.isdir(sidecar):
        raise MetadataError(
            f"The sidecar path {sidecar!r} is a folder, not the model's "
            "metadata. Rename or remove that folder (the model's sidecar "
            "is <stem>.json beside it)."
        )
    try:
        with open(sidecar, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise MetadataError(
            f"Cannot read the sidecar {sidecar!r} ({exc}). Make it "
            "readable, or remove it if the model embeds its metadata."
        ) from exc
    return sidecar, _parse(data, f"the sidecar {sidecar!r}")


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _parse(data: bytes, where: str, check_schema: bool = True) -> Metadata:
    try:
        metadata = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MetadataError(
            f"{where} is not valid UTF-8 JSON ({exc}). Export the model "
            "again with edge_backbones."
        ) from exc
    schemas = (SCHEMA, SCHEMA_COMPILED)
    if not isinstance(metadata, dict) or metadata.get("schema") not in schemas:
        got = metadata.get("schema") if isinstance(metadata, dict) else None
        raise MetadataError(
            f"{where} has schema {got!r}; this runtime reads {schemas}. "
            "Export the model again, or upgrade edge_backbones."
        )
    for key in ("input", "outputs"):
        if not isinstance(metadata.get(key), dict):
            raise MetadataError(
                f"{where} has no {key!r} object (got "
                f"{type(metadata.get(key)).__name__}). Export the model again."
            )
    return validate(metadata, where) if check_schema else metadata


def validate_metadata(
    metadata: Metadata,
    input_spec: "TensorSpec",
    output_specs: Mapping[str, "TensorSpec"],
) -> None:
    """Raises MetadataError where `metadata` disagrees with the model.

    `input_spec` and `output_specs` (name -> spec) describe the tensors the
    interpreter reports; each spec has `name`, `shape` and `dtype`.

    Raises:
        MetadataError: a name, shape or dtype differs between the two.
    """
    problems = []
    declared = metadata["input"]
    for key, actual in (
        ("name", input_spec.name),
        ("shape", list(input_spec.shape)),
        ("dtype", input_spec.dtype),
    ):
        if key in declared and declared[key] != actual:
            problems.append(
                f"input {key} is {declared[key]!r} in the metadata but "
                f"{actual!r} in the model"
            )
    names = set(metadata["outputs"])
    if names != set(output_specs):
        problems.append(
            f"outputs are {sorted(names)} in the metadata but "
            f"{sorted(output_specs)} in the model's SignatureDef"
        )
    else:
        for name, spec in output_specs.items():
            declared = metadata["outputs"][name]
            if "shape" in declared and declared["shape"] != list(spec.shape):
                problems.append(
                    f"output {name} has shape {declared['shape']} in the "
                    f"metadata but {list(spec.shape)} in the model"
                )
    if problems:
        raise MetadataError(
            "The model's metadata disagrees with the model: "
            + "; ".join(problems)
            + ". The metadata was probably copied from another export; "
            "export the model again."
        )
