"""Atomic writes: nothing half-written is ever left where a good file is.

Each write goes to a temporary name in the destination's own folder (so the
final rename never crosses file systems) and replaces the destination only
once complete. Standard library only: the runtime and reports use it too.

Every JSON the package writes goes through `dumps_json`: strict JSON (RFC
8259) has no NaN or Infinity, and a reader in another language (or
`json.loads(text, parse_constant=...)` that refuses them) must parse it.
"""

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NoReturn, TypeVar

__all__ = [
    "dumps_json",
    "loads_json_strict",
    "stage_file",
    "write_file_atomic",
    "write_json_atomic",
    "staged_directory",
]

# a destination path; the writers return the one they were given
_Path = TypeVar("_Path", bound="str | os.PathLike[str]")


def dumps_json(
    data: object,
    indent: int | str | None = None,
    default: Callable[[Any], Any] | None = None,
) -> str:
    """`data` as strict JSON text; a ValueError naming the key path if a
    float in it is NaN or infinite (a bug in the writer: it must map such
    values to null, with a flag saying why, before writing). `default` is
    `json.dumps`'s hook for objects JSON has no type for.

    Raises:
        ValueError: a float in `data` is NaN or infinite.
    """
    try:
        return json.dumps(data, indent=indent, allow_nan=False, default=default)
    except ValueError as exc:
        raise ValueError(
            f"Refusing to write non-strict JSON ({exc}) at "
            f"{_non_finite_path(data) or '?'}: JSON has no NaN/Infinity. "
            "Map the value to null (with a flag) before writing."
        ) from exc


def _non_finite_path(value: object, path: str = "$") -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return path
    items: Iterable[tuple[str, object]] = ()
    if isinstance(value, dict):
        items = ((f"{path}.{k}", v) for k, v in value.items())
    elif isinstance(value, (list, tuple)):
        items = ((f"{path}[{i}]", v) for i, v in enumerate(value))
    for where, item in items:
        found = _non_finite_path(item, where)
        if found:
            return found
    return None


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not strict JSON")


def loads_json_strict(text: str | bytes) -> Any:
    """Parses JSON, refusing the NaN/Infinity extensions Python allows.

    Raises:
        ValueError: `text` is not strict JSON (json.JSONDecodeError for
            malformed text).
    """
    return json.loads(text, parse_constant=_refuse_constant)


def write_json_atomic(
    path: _Path,
    data: object,
    indent: int | str | None = 1,
    default: Callable[[Any], Any] | None = None,
) -> _Path:
    """Writes `data` as strict JSON (plus a newline) to `path` atomically.

    Raises:
        ValueError: a float in `data` is NaN or infinite (nothing written).
    """
    text = dumps_json(data, indent=indent, default=default)
    return write_file_atomic(path, text + "\n")


def stage_file(path: str | os.PathLike[str], data: str | bytes) -> str:
    """Writes `data` (str or bytes) beside `path`; returns the temp path.

    The caller `os.replace`s it into place (or unlinks it). Use this to
    commit several files together; `write_file_atomic` for one.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, staging = tempfile.mkstemp(
        prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder
    )
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file private (0600); the final file gets the
        # permissions any new file would get here
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o666 & ~umask)
        return staging
    except BaseException:
        os.unlink(staging)
        raise


def write_file_atomic(path: _Path, data: str | bytes) -> _Path:
    """Writes `data` (str or bytes) to `path` via a temp file + rename."""
    staging = stage_file(path, data)
    try:
        os.replace(staging, path)
    except BaseException:
        os.unlink(staging)
        raise
    return path


@contextlib.contextmanager
def staged_directory(path: str | os.PathLike[str]) -> Iterator[str]:
    """Yields an empty folder beside `path` that replaces it on success.

    If the body raises, the staging folder is removed and `path` (if it
    existed) is left as it was.
    """
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(
        prefix="." + os.path.basename(os.path.normpath(path)) + ".",
        dir=parent,
    )
    try:
        yield staging
        if os.path.isdir(path):
            shutil.rmtree(path)
        os.replace(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
