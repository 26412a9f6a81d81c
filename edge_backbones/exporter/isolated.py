"""One step of an export in a child process, whose memory dies with it.

The TFLite converter holds several float32 copies of the weights (the
SavedModel it loads, the frozen constants, the MLIR module, the
flatbuffer); in the export's own process they come on top of the Keras
model's. `convert` runs one float conversion (fp32, fp16, dynamic) in a
`spawn`ed child that reads the SavedModel and writes the candidate file,
so the export's peak is the larger of the two processes' needs, not their
sum (`memory.isolate_conversion` decides when; `benchmarks/memory/`).

`run` is the general form: the child's typed errors reach the parent as
the same errors with the same messages; a child killed (by the kernel's
OOM killer, say) is an ExportError naming the signal; Ctrl-C in the parent
ends the child and leaves no file behind.
"""

import importlib
import os
import pickle
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from typing import Any

from edge_backbones.errors import ExportError

__all__ = ["FLOAT_CONVERTERS", "convert", "run"]

# the converter kinds that need no calibration photos in the child
FLOAT_CONVERTERS = ("fp32", "fp16", "dynamic")


def _child_main(request: str, reply: str) -> None:
    """The child: runs the pickled call in `request`, pickles
    (status, value, peak RSS) to `reply`."""
    # the parent owns Ctrl-C: it ends this process itself
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    from edge_backbones.atomic_io import write_file_atomic
    from edge_backbones.exporter.memory import peak_rss_bytes

    with open(request, "rb") as f:
        module, name, args = pickle.load(f)
    try:
        result = ("ok", getattr(importlib.import_module(module), name)(*args))
    except Exception as exc:  # handed to the parent as it is
        result = ("error", exc)
    try:
        data = pickle.dumps((*result, peak_rss_bytes()))
    except Exception:  # an exception that does not pickle
        error = ExportError(f"{type(result[1]).__name__}: {result[1]}")
        data = pickle.dumps(("error", error, peak_rss_bytes()))
    write_file_atomic(reply, data)


def _die_with_parent() -> None:
    """On Linux, the kernel ends the child when the parent dies (a
    killed export leaves no converter running)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _child_env() -> dict[str, str]:
    """The child's environment: glibc's malloc with a fixed mmap threshold.

    By default glibc raises the threshold to the largest block freed (up
    to 32 MiB), after which the converter's weight-sized blocks come from
    the heap and stay resident when freed: on sam_vit_base the fp32
    conversion peaked at 3100 MiB, and at 2362 MiB with a fixed 128 KiB
    threshold (benchmarks/memory/). Other platforms ignore the variable.
    """
    return {"MALLOC_MMAP_THRESHOLD_": "131072", **os.environ}


def run(
    target: Callable[..., Any], *args: Any, what: str = "child process"
) -> tuple[Any, int]:
    """(target(*args), the child's peak resident bytes), run in a child.

    The child is a fresh interpreter (`python -m` this module): it never
    imports the caller's main script, so a script without an
    `if __name__ == "__main__"` guard is not run twice. `target` must be a
    module-level function; `args` must pickle.

    Raises:
        Whatever `target` raised, as the same type with the same message;
        ExportError if the child died without a word (killed).
    """
    with tempfile.TemporaryDirectory(prefix="edge-backbones-child-") as tmp:
        request = os.path.join(tmp, "request.pickle")
        reply = os.path.join(tmp, "reply.pickle")
        with open(request, "wb") as f:
            pickle.dump((target.__module__, target.__qualname__, args), f)
        process = subprocess.Popen(
            [sys.executable, "-m", __name__, request, reply], env=_child_env()
        )
        try:
            code = process.wait()
        except BaseException:  # Ctrl-C: the child goes with the parent
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            raise
        if not os.path.exists(reply):
            cause = (
                f"was killed by signal {signal.Signals(-code).name}"
                + (
                    " (the kernel's OOM killer, most likely)"
                    if code == -9
                    else ""
                )
                if code < 0
                else f"exited with status {code}"
            )
            raise ExportError(
                f"{what} {cause} before it finished. If memory ran out, free "
                "memory or export a smaller --image-size."
            )
        with open(reply, "rb") as f:
            status, value, peak = pickle.load(f)
    if status == "error":
        raise value
    return value, int(peak)


def _convert_to_file(
    saved_model_dir: str,
    kind: str,
    float_weight_ops: tuple[str, ...],
    allow_flex: bool,
    dest: str,
) -> int:
    """In the child: converts and writes `dest` atomically; its size."""
    from edge_backbones.atomic_io import write_file_atomic
    from edge_backbones.exporter.convert import Converter

    converter = Converter(
        saved_model_dir,
        allow_flex=allow_flex,
        log=lambda line: print(line, file=sys.stderr, flush=True),
    )
    if kind == "dynamic":
        content = converter.dynamic(float_weight_ops)
    else:
        content = getattr(converter, kind)()
    write_file_atomic(dest, content)
    return len(content)


def convert(
    saved_model_dir: str,
    kind: str,
    dest: str,
    float_weight_ops: tuple[str, ...] = (),
    allow_flex: bool = False,
) -> tuple[bytes, int]:
    """(the .tflite bytes, the child's peak resident bytes): one float
    conversion of `saved_model_dir` in a child process, via `dest`.

    Raises:
        ExportError: the conversion failed (as `Converter` raises it), or
            the child was killed.
    """
    if kind not in FLOAT_CONVERTERS:
        raise ExportError(
            f"converter {kind!r} calibrates and runs in the export's own "
            f"process; a child converts {list(FLOAT_CONVERTERS)} only."
        )
    try:
        _, peak = run(
            _convert_to_file,
            os.fspath(saved_model_dir),
            kind,
            tuple(float_weight_ops),
            allow_flex,
            dest,
            what=f"the {kind} conversion's child process",
        )
        with open(dest, "rb") as f:
            content = f.read()
    finally:
        if os.path.exists(dest):
            os.unlink(dest)
    return content, peak


if __name__ == "__main__":
    _child_main(*sys.argv[1:3])
