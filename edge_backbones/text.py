"""Text in and out shared by every CLI and table: comma lists, sizes.

Top level, next to errors.py and atomic_io.py: the export and npu CLIs,
the recipe loader, the runtime and the report all read "a,b,c" values
and print artifact sizes, and this module imports nothing, so the
TensorFlow-free runtime and report use it without pulling any subpackage
in.
"""

from collections.abc import Iterable

__all__ = ["megabytes", "split_commas"]

# "MB" everywhere we print a file size is 10^6 bytes, as in the reports'
# tables; memory (peak RSS) is printed in MiB and labelled so.
BYTES_PER_MB = 10**6


def megabytes(size_bytes: float) -> float:
    """A file size in MB (10^6 bytes), the unit of every "MB" we print."""
    return size_bytes / BYTES_PER_MB


def split_commas(value: str | Iterable[str] | None) -> list[str]:
    """ "a, b,,c" -> ["a", "b", "c"]: items stripped, empty ones dropped.

    None is the empty list; a list or tuple (a TOML array, a Python
    call's argument) is taken as it is.
    """
    if value is None:
        return []
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return list(value)
