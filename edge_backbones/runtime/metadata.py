"""Reads the `edge_backbones` metadata of a .tflite and checks it.

The exporter embeds the JSON in the FlatBuffer's `metadata` list and writes
the same JSON beside the artifact (`x.tflite` -> `x.json`, plus `sha256` and
`size_bytes`). The embedded copy wins: it cannot drift from the model it is
in. A sidecar is only trusted when its hash matches the model file.
"""

import hashlib
import json
import os

from edge_backbones.errors import MetadataError

__all__ = [
    "METADATA_NAME",
    "SCHEMA",
    "file_sha256",
    "read_metadata",
    "sidecar_path",
    "validate_metadata",
]

METADATA_NAME = "edge_backbones"
SCHEMA = "edge_backbones.tflite/1"


def sidecar_path(model_path):
    """`x.tflite` -> `x.json`."""
    return os.path.splitext(os.fspath(model_path))[0] + ".json"


def read_metadata(model_path, model_file):
    """The metadata dict of `model_path`, or None if it has none.

    `model_file` is the parsed file (`model_file.read_model_file`), whose
    embedded entries are looked at first.
    """
    embedded = model_file.metadata.get(METADATA_NAME)
    if embedded is not None:
        return _parse(embedded, f"the metadata embedded in {model_path!r}")
    sidecar = sidecar_path(model_path)
    if not os.path.isfile(sidecar):
        return None
    with open(sidecar, "rb") as f:
        metadata = _parse(f.read(), f"the sidecar {sidecar!r}")
    expected = metadata.get("sha256")
    if expected is not None:
        actual = file_sha256(model_path)
        if actual != expected:
            raise MetadataError(
                f"The sidecar {sidecar!r} describes another build: its sha256"
                f" is {expected} but {model_path!r} hashes to {actual}. "
                "Export again, or delete the stale sidecar."
            )
    return metadata


def file_sha256(path):
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _parse(data, where):
    try:
        metadata = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MetadataError(
            f"{where} is not valid UTF-8 JSON ({exc}). Export the model "
            "again with edge_backbones."
        ) from exc
    if not isinstance(metadata, dict) or metadata.get("schema") != SCHEMA:
        got = metadata.get("schema") if isinstance(metadata, dict) else None
        raise MetadataError(
            f"{where} has schema {got!r}; this runtime reads {SCHEMA!r}. "
            "Export the model again, or upgrade edge_backbones."
        )
    for key in ("input", "outputs"):
        if not isinstance(metadata.get(key), dict):
            raise MetadataError(
                f"{where} has no {key!r} object (got "
                f"{type(metadata.get(key)).__name__}). Export the model again."
            )
    return metadata


def validate_metadata(metadata, input_spec, output_specs):
    """Raises MetadataError where `metadata` disagrees with the model.

    `input_spec` and `output_specs` (name -> spec) describe the tensors the
    interpreter reports; each spec has `name`, `shape` and `dtype`.
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
