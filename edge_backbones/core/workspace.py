"""The export's work folder in `out`, and committing files from it.

An export stages everything (SavedModel, candidates, the final files) in a
hidden folder `.export-<pid>-<random>` inside `out`, so every rename into
place stays on one file system. While the export runs, its process holds an
exclusive `flock` on the folder's `lock` file. A later export removes a
folder only when both say its owner is gone: the pid in the name is not a
live process here, and the lock is free (the kernel drops it when the
owner dies, however it dies; this also covers an owner in another pid
namespace sharing the folder). A live concurrent export is never touched.

`commit` replaces a set of files (an artifact and its sidecar) all or none:

1. every new file is complete in the work folder (written, fsynced);
2. every destination is checked: a folder where a file belongs fails here,
   before anything changes;
3. the current files are hard-linked into `backup/`, then a journal naming
   them is written (so a journal means a whole backup);
4. the new files are renamed into place, the sidecar first, so a `.tflite`
   that did not exist before is never visible without its sidecar;
5. the journal is removed.

A failure in step 4 restores the backed-up files at once. A kill during
step 4 leaves the journal in a dead folder; the next export into `out` (or
`recover(out)`) restores the old files from it before removing the folder.
So a reader sees a mixed pair only between the two renames, or after a kill
until the next export into that folder.
"""

import contextlib
import json
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator, Sequence

from edge_backbones.atomic_io import dumps_json, stage_file, write_file_atomic
from edge_backbones.errors import InputError

__all__ = [
    "PREFIX",
    "KILL_AT_ENV",
    "check_destination",
    "commit",
    "crash_point",
    "prepare_out",
    "recover",
    "stage",
    "workspace",
    "write_pair",
]

PREFIX = ".export-"
# the hostile tests SIGKILL an export at a named step (see crash_point)
KILL_AT_ENV = "EDGE_BACKBONES_TEST_KILL_AT"
_LOCK = "lock"
_BACKUP = "backup"
_JOURNAL = "journal.json"


def crash_point(name: str) -> None:
    """Dies here, as a SIGKILL would, when $EDGE_BACKBONES_TEST_KILL_AT
    names this step: how tests/hostile kills an export deterministically."""
    if os.environ.get(KILL_AT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _lock(path: str, blocking: bool) -> int | None:
    """An open fd holding the exclusive lock on `path`, or None if held."""
    import fcntl

    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        flags = fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB)
        fcntl.flock(fd, flags)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _owner_alive(name: str) -> bool:
    """Whether the pid in a work folder's name is a live process here."""
    try:
        pid = int(name[len(PREFIX) :].split("-", 1)[0])
    except ValueError:
        return True  # not ours to judge (no pid): leave it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def recover(out: str) -> list[str]:
    """Restores and removes work folders of killed exports in `out`.

    Returns the folders removed. A folder whose owner may be alive stays.
    """
    try:
        names = sorted(os.listdir(out))
    except OSError:
        return []
    removed = []
    for name in names:
        path = os.path.join(out, name)
        if (
            not name.startswith(PREFIX)
            or not os.path.isdir(path)
            or os.path.islink(path)
            or _owner_alive(name)
        ):
            continue
        try:
            fd = _lock(os.path.join(path, _LOCK), blocking=False)
        except FileNotFoundError:  # removed meanwhile by another export
            continue
        if fd is None:
            continue
        try:
            _roll_back(path)
            shutil.rmtree(path, ignore_errors=True)
        finally:
            os.close(fd)
        removed.append(path)
    return removed


def prepare_out(out: str | os.PathLike[str]) -> str:
    """Makes the folder `out`, proves it writable, cleans stale folders.

    An `out` that is a file, or where no folder can be created, is an
    InputError that says so: call this before any conversion work.

    Raises:
        InputError: `out` is a file, or not writable.
    """
    out = os.fspath(out)
    if os.path.lexists(out) and not os.path.isdir(out):
        raise InputError(
            f"out={out!r} is a file; artifacts go into a folder. Give a "
            "folder path (--out DIR), or move the file away."
        )
    try:
        os.makedirs(out, exist_ok=True)
        recover(out)
        os.rmdir(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=out))
    except OSError as exc:
        raise InputError(
            f"Cannot write into out={out!r} ({exc.strerror or exc}). Give a"
            " folder you can write to (--out DIR)."
        ) from exc
    return out


@contextlib.contextmanager
def workspace(out: str | os.PathLike[str]) -> Iterator[str]:
    """Yields a new locked work folder in `out`; removes it afterwards.

    Raises:
        InputError: `out` is a file, or not writable.
    """
    out = prepare_out(out)
    path = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=out)
    fd = _lock(os.path.join(path, _LOCK), blocking=True)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        if fd is not None:  # a blocking lock always returns its fd
            os.close(fd)


def stage(work: str, name: str, data: str | bytes) -> str:
    """Writes `data` completely (fsynced) into the work folder."""
    return stage_file(os.path.join(work, name), data)


def write_pair(
    path: str, content: bytes, sidecar: str | bytes, work: str | None = None
) -> None:
    """Writes `path` and its `<stem>.json` sidecar together: all or none.

    Both are staged completely in `work` (by default a fresh work folder
    beside `path`), then `commit` moves them into place.
    """
    json_path = os.path.splitext(path)[0] + ".json"
    with contextlib.ExitStack() as stack:
        if work is None:
            folder = os.path.dirname(os.path.abspath(path))
            work = stack.enter_context(workspace(folder))
        staged = [
            stage(work, os.path.basename(json_path), sidecar),
            stage(work, os.path.basename(path), content),
        ]
        try:
            commit(work, list(zip(staged, [json_path, path], strict=True)))
        finally:
            for name in staged:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name)


def check_destination(final: str) -> None:
    """InputError if `final` exists and is not a file.

    Raises:
        InputError: `final` exists and is not a file.
    """
    if os.path.lexists(final) and not os.path.isfile(final):
        raise InputError(
            f"{final!r} exists and is not a file (a folder?), so the "
            "artifact cannot be written there. Move it away, or export into"
            " another folder (--out) or under another name (name=...)."
        )


def commit(work: str, moves: Sequence[tuple[str, str]]) -> None:
    """Renames each (staged, final) of `moves` into place: all or none.

    The staged files must be in `work`, on the finals' file system.
    """
    for _, final in moves:
        check_destination(final)
    backup = os.path.join(work, _BACKUP)
    shutil.rmtree(backup, ignore_errors=True)
    os.mkdir(backup)
    journal = []
    for index, (_, final) in enumerate(moves):
        saved = None
        if os.path.isfile(final):
            saved = str(index)
            try:
                os.link(final, os.path.join(backup, saved))
            except OSError:  # no hard links on this file system
                shutil.copy2(final, os.path.join(backup, saved))
        journal.append({"final": os.path.abspath(final), "backup": saved})
    write_file_atomic(os.path.join(backup, _JOURNAL), dumps_json(journal))
    crash_point("staged")
    try:
        for index, (staged, final) in enumerate(moves):
            if index:
                crash_point("between_renames")
            os.replace(staged, final)
        crash_point("renamed")
    except BaseException:
        _roll_back(work)
        raise
    os.unlink(os.path.join(backup, _JOURNAL))
    shutil.rmtree(backup, ignore_errors=True)


def _roll_back(work: str) -> None:
    """Puts back the files a journal in `work` names (idempotent)."""
    backup = os.path.join(work, _BACKUP)
    try:
        with open(os.path.join(backup, _JOURNAL)) as f:
            journal = json.load(f)
    except (OSError, ValueError):
        return  # no journal: nothing was replaced yet (or all was done)
    for entry in reversed(journal):
        final = entry["final"]
        if entry["backup"] is None:
            # it did not exist before: remove what the commit put there
            with contextlib.suppress(FileNotFoundError):
                os.unlink(final)
            continue
        saved = os.path.join(backup, entry["backup"])
        if os.path.exists(saved):  # gone: restored by an earlier attempt
            os.replace(saved, final)
    os.unlink(os.path.join(backup, _JOURNAL))
