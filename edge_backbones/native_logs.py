"""What TensorFlow, XLA and LiteRT print from C++ stays off the terminal.

Their start-up and conversion chatter (XLA's CUDA probe, oneDNN's notice,
the MLIR quantizer's settings, LiteRT's delegate INFO lines) is written to
file descriptor 2 by native code, below Python's `sys.stderr`, and part of
it before any log level is read. So a command captures descriptor 2 in a
temporary file while it works, keeps Python's own `sys.stderr` on the
terminal (the package's progress lines), and replays the capture only if
the command fails. No TensorFlow import here: any layer may use it.
"""

import contextlib
import io
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import Any, TextIO

__all__ = [
    "add_verbose_argument",
    "captured_native_stderr",
    "quiet_python_loggers",
    "set_log_levels",
]

# the Python loggers TensorFlow and its dependencies write warnings to
_NOISY_LOGGERS = ("tensorflow", "absl", "h5py", "jax")


def add_verbose_argument(parser: Any) -> None:
    """The `-v/--verbose` flag of a command that keeps native log lines off
    the terminal."""
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also show TensorFlow's and LiteRT's own log lines",
    )


def set_log_levels(verbose: bool) -> None:
    """Sets TensorFlow's C++ log level before it is imported (3: errors
    only; 0 with `verbose`). A value the user exported is kept."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "3")


def quiet_python_loggers() -> None:
    """Keeps absl's and TensorFlow's Python warnings (tracing retraces,
    deprecations of TF internals) off the terminal: errors still show."""
    import logging

    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from absl import logging as absl_logging
    except ImportError:
        return
    absl_logging.set_verbosity(absl_logging.ERROR)


def _python_writes_to_fd2() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return False


@contextlib.contextmanager
def captured_native_stderr() -> Iterator[None]:
    """Runs the block with descriptor 2 going to a temporary file.

    Python's `sys.stderr` keeps writing to the terminal (through a copy of
    the original descriptor) when it wrote to descriptor 2; a stream that
    is not descriptor 2 (pytest's capture) is left alone. If the block
    raises, what native code printed is written to the terminal first, so
    a failure keeps its context. A process killed by a signal loses it:
    run with `-v` to see everything as it happens.
    """
    sys.stdout.flush()
    if sys.stderr is not None:
        sys.stderr.flush()
    saved = os.dup(2)
    swap = _python_writes_to_fd2()
    original_stream = sys.stderr
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        if swap:
            sys.stderr = io.TextIOWrapper(
                os.fdopen(os.dup(saved), "wb", buffering=0),
                encoding=original_stream.encoding,
                errors="backslashreplace",
                line_buffering=True,
            )
        try:
            yield
        except BaseException:
            _restore(saved, swap, original_stream)
            capture.seek(0)
            os.write(2, capture.read())
            raise
        else:
            _restore(saved, swap, original_stream)
        finally:
            os.close(saved)


def _restore(saved: int, swap: bool, original_stream: TextIO) -> None:
    if swap and sys.stderr is not original_stream:
        sys.stderr.flush()
        sys.stderr.close()
        sys.stderr = original_stream
    os.dup2(saved, 2)
