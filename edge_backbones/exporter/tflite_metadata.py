"""Our metadata inside the .tflite FlatBuffer and beside it, written atomically.

The JSON (schema `edge_backbones.tflite/1`, described in
docs/export.md) goes into the model's `metadata` list under the name
`edge_backbones`, which `runtime.model_file.read_model_file` reads without
TensorFlow, and into a sidecar `<stem>.json` that adds `sha256` and
`size_bytes` of the final file. The embedded JSON starts with
`content_sha256`, the hash `EdgeModel` checks on load (see
`runtime.metadata`, the light module that reads it: its name, sidecar
rule and time stamps; `core.artifact` owns the schema every field follows;
this module adds the TensorFlow half, writing).
"""

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from edge_backbones._compat import tensorflow as tf_compat
from edge_backbones.atomic_io import dumps_json
from edge_backbones.core.artifact import validate
from edge_backbones.errors import ExportError, require
from edge_backbones.runtime.metadata import (
    DIGEST_KEY,
    METADATA_NAME,
    SCHEMA,
    content_sha256,
    digest_span,
    sidecar_path,
    utc_now,
)
from edge_backbones.runtime.model_file import read_model_file

__all__ = [
    "METADATA_NAME",
    "SCHEMA",
    "embed_metadata",
    "graph_summary",
    "sidecar_path",
    "utc_now",
    "versions",
    "write_artifact",
]


def embed_metadata(
    model_content: bytes, metadata: Mapping[str, Any], name: str = METADATA_NAME
) -> bytes:
    """`model_content` with `metadata` (a dict, as UTF-8 JSON) embedded.

    An entry of the same name is replaced, buffer and all, so re-embedding
    is idempotent (the old payload is not left behind in the file). Under
    our own name the JSON starts with `content_sha256`: the sha256 of the
    returned bytes with that digest's 64 digits read as "0"s.
    """
    content = _embed(model_content, metadata, name)
    if name != METADATA_NAME:
        return content
    span = digest_span(read_model_file(content))
    if span is None:  # _embed wrote the digest first: a bug if not found
        raise ExportError(
            "The embedded metadata lost its content_sha256 while being "
            "written; this is a bug in edge_backbones, please report it."
        )
    digest = content_sha256(content, span)
    content = bytearray(content)
    content[span[0] : span[1]] = digest.encode("ascii")
    return bytes(content)


def _embed(model_content, metadata, name):
    require("tensorflow", "export")
    schema = tf_compat.schema()
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(model_content)
    if name == METADATA_NAME:
        # the digest goes first, as zeros until the file is complete
        metadata = {
            DIGEST_KEY: "0" * 64,
            **{k: v for k, v in metadata.items() if k != DIGEST_KEY},
        }
    payload = dumps_json(metadata).encode("utf-8")
    entries = [m for m in (model.metadata or []) if _name(m) != name]
    ours = [m for m in (model.metadata or []) if _name(m) == name]
    if ours:
        entry = ours[0]
        buffer = model.buffers[entry.buffer]
    else:
        buffer = schema.BufferT()
        model.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name = name
        entry.buffer = len(model.buffers) - 1
    buffer.data = np.frombuffer(payload, dtype=np.uint8)
    model.metadata = [*entries, entry]
    return flatbuffer_utils.convert_object_to_bytearray(model)


def _name(entry):
    name = entry.name
    return name.decode("utf-8") if isinstance(name, bytes) else name


def graph_summary(
    model_content: bytes, gpu_compatible: bool | None = None
) -> dict[str, Any]:
    """The metadata's "graph" block: op count and histogram, max rank."""
    parsed = read_model_file(model_content)
    return {
        "op_count": parsed.op_count,
        "op_histogram": parsed.op_histogram,
        "max_tensor_rank": parsed.max_tensor_rank,
        "gpu_compatible": gpu_compatible,
    }


def versions() -> dict[str, str]:
    """The versions of this package, TensorFlow and Keras, as recorded."""
    import keras
    import tensorflow as tf

    from edge_backbones import __version__

    return {
        "edge_backbones": __version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def write_artifact(
    path: str,
    model_content: bytes,
    metadata: Mapping[str, Any],
    work: str | None = None,
) -> int:
    """Writes `path` (.tflite with `metadata` embedded) and its sidecar.

    Both are written completely into the work folder `work` (by default a
    fresh one beside `path`) and then moved into place together by
    `workspace.commit`: after a failure or a kill at any point the
    previous `.tflite` and `.json` are both as they were (a kill during the
    two renames is undone by the next export into the folder). Returns the
    final bytes' size.
    """
    from edge_backbones.core import workspace

    validate(metadata, f"the metadata of {path!r}")
    content = embed_metadata(model_content, metadata)
    sidecar = {
        # the embedded JSON as written, content_sha256 first
        **json.loads(read_model_file(content).metadata[METADATA_NAME]),
        "sha256": hashlib.sha256(content).hexdigest(),
        "size_bytes": len(content),
    }
    validate(sidecar, f"the sidecar of {path!r}")
    workspace.write_pair(
        path, content, dumps_json(sidecar, indent=2) + "\n", work
    )
    return len(content)
