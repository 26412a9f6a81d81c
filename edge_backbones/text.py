"""Comma lists, the one parser for every CLI flag and recipe value.

Top level, next to errors.py and atomic_io.py: the export and npu CLIs,
the recipe loader, the runtime and the report all read "a,b,c" values,
and this module imports nothing, so the TensorFlow-free runtime and
report can use it without pulling any subpackage in.
"""

__all__ = ["split_commas"]


def split_commas(value):
    """ "a, b,,c" -> ["a", "b", "c"]: items stripped, empty ones dropped.

    None is the empty list; a list or tuple (a TOML array, a Python
    call's argument) is taken as it is.
    """
    if value is None:
        return []
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return list(value)
