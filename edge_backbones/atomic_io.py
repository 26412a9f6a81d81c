"""Atomic writes: nothing half-written is ever left where a good file is.

Each write goes to a temporary name in the destination's own folder (so the
final rename never crosses file systems) and replaces the destination only
once complete. Standard library only: the runtime and reports use it too.
"""

import contextlib
import os
import shutil
import tempfile

__all__ = ["stage_file", "write_file_atomic", "staged_directory"]


def stage_file(path, data):
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


def write_file_atomic(path, data):
    """Writes `data` (str or bytes) to `path` via a temp file + rename."""
    staging = stage_file(path, data)
    try:
        os.replace(staging, path)
    except BaseException:
        os.unlink(staging)
        raise
    return path


@contextlib.contextmanager
def staged_directory(path):
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
