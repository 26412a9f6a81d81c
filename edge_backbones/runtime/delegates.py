"""Delegate names -> what to load, and how much of a graph a delegate took.

Names, in the order a caller lists them (precedence):
- "xnnpack": the interpreter's default CPU path (its op resolver applies
  the XNNPACK delegate when tensors are allocated);
- "cpu": the interpreter's builtin kernels, default delegates off;
- "portable": TFLite's portable reference kernels (slow; no
  architecture-specific rounding: the same int8 artifact computes the same
  integers on ARM and x86, docs/raspberry_pi.md);
- "gpu", "nnapi", "edgetpu": external delegate libraries, found through an
  environment variable (`EDGE_BACKBONES_GPU_DELEGATE`, ...) or the usual
  library name. Unless that variable is set, "gpu" on LiteRT first tries
  LiteRT's own GPU accelerator (`engines.CompiledModelEngine`), which is
  only loaded after a child process showed it works (`gpu_probe`);
- a path to any delegate `.so` / `.dylib` / `.dll`.
Each entry may be `(name_or_path, {option: value})`; the options go to the
delegate library unchanged.
"""

import ctypes
import dataclasses
import os
import sys
from collections.abc import Iterable
from typing import Any, TypeAlias

from edge_backbones._compat import litert as litert_compat
from edge_backbones.errors import DelegateUnavailableError
from edge_backbones.runtime.backends import Backend

__all__ = [
    "KNOWN_DELEGATES",
    "DelegateFallbackWarning",
    "DelegateSpec",
    "parse_delegates",
    "library_candidates",
    "library_overridden",
    "load_library_delegate",
    "delegation_summary",
]

# one entry of `delegates`: a name or library path, optionally with the
# options its library takes
DelegateName: TypeAlias = str | os.PathLike[str]
DelegateEntry: TypeAlias = (
    DelegateName | tuple[DelegateName, dict[str, Any]] | list[Any]
)

# name -> (environment variable with a library path, usual library names)
_LIBRARIES: dict[str, tuple[str, dict[str, tuple[str, ...]]]] = {
    "gpu": (
        "EDGE_BACKBONES_GPU_DELEGATE",
        {
            "linux": ("libtensorflowlite_gpu_delegate.so",),
            "darwin": ("libtensorflowlite_gpu_delegate.dylib",),
            "win32": ("tensorflowlite_gpu_delegate.dll",),
        },
    ),
    # Android's NNAPI delegate is linked into apps, not shipped as a
    # library, so there is no usual name to try: the variable must say
    "nnapi": ("EDGE_BACKBONES_NNAPI_DELEGATE", {}),
    # the Coral Edge TPU runtime's names (coral.ai/docs/edgetpu/tflite-python)
    "edgetpu": (
        "EDGE_BACKBONES_EDGETPU_DELEGATE",
        {
            "linux": ("libedgetpu.so.1",),
            "darwin": ("libedgetpu.1.dylib",),
            "win32": ("edgetpu.dll",),
        },
    ),
}
KNOWN_DELEGATES = ("xnnpack", "cpu", "portable", *_LIBRARIES)
_BUILTIN = ("xnnpack", "cpu", "portable")  # no library, no options
_LIBRARY_SUFFIXES = (".so", ".dylib", ".dll")


class DelegateFallbackWarning(UserWarning):
    """A requested delegate did not load; the model runs on the next one."""


@dataclasses.dataclass(frozen=True)
class DelegateSpec:
    """One entry of `delegates`: what to load and with which options."""

    name: str  # a known name, or the library path as given
    # "default" (XNNPACK), "reference" (cpu), "portable" or "library"
    kind: str
    options: dict[str, Any] = dataclasses.field(default_factory=dict)


def _is_library_path(text: str) -> bool:
    base = os.path.basename(text)
    return (
        os.sep in text
        or "/" in text
        or base.endswith(_LIBRARY_SUFFIXES)
        or ".so." in base
    )


def parse_delegates(
    delegates: DelegateName | Iterable[DelegateEntry],
) -> list[DelegateSpec]:
    """`delegates` as given by a caller -> a list of DelegateSpec.

    An unknown name raises at once, even when not strict: a typo should not
    quietly run the model on another device.

    Raises:
        DelegateUnavailableError: an unknown name, malformed options, or
            no delegate at all.
    """
    if isinstance(delegates, (str, os.PathLike)):
        delegates = (delegates,)
    specs = []
    entry: object
    for entry in delegates:
        options: dict[str, Any] = {}
        if isinstance(entry, (tuple, list)) and len(entry) == 2:
            entry, given = entry
            if not isinstance(given, dict):
                raise DelegateUnavailableError(
                    f"Delegate options must be a dict; got {given!r} for "
                    f"{entry!r}. Pass e.g. ('gpu', {{'option': 'value'}})."
                )
            options = given
        if isinstance(entry, os.PathLike):
            entry = os.fspath(entry)
        if not isinstance(entry, str):
            raise DelegateUnavailableError(
                f"A delegate is a name, a library path or (name, options); "
                f"got {entry!r}. Known names: {list(KNOWN_DELEGATES)}."
            )
        name = entry.strip().lower()
        if options and name in _BUILTIN:
            raise DelegateUnavailableError(
                f"Options {options!r} were given for {name!r}, which takes "
                "none (the interpreter's own CPU path); options go to "
                "delegate libraries only. Drop them or name a library."
            )
        if name == "xnnpack":
            specs.append(DelegateSpec("xnnpack", "default", options))
        elif name == "cpu":
            specs.append(DelegateSpec("cpu", "reference", options))
        elif name == "portable":
            specs.append(DelegateSpec("portable", "portable", options))
        elif name in _LIBRARIES or _is_library_path(entry):
            key = name if name in _LIBRARIES else entry
            specs.append(DelegateSpec(key, "library", options))
        else:
            raise DelegateUnavailableError(
                f"Unknown delegate {entry!r}. Use one of "
                f"{list(KNOWN_DELEGATES)}, or a path to a delegate library "
                "(.so/.dylib/.dll)."
            )
    if not specs:
        raise DelegateUnavailableError(
            "No delegate given (an empty list). Pass at least one, e.g. "
            "('xnnpack',)."
        )
    return specs


def library_candidates(spec: DelegateSpec) -> list[str]:
    """The library files to try for a "library" DelegateSpec, in order."""
    if spec.name not in _LIBRARIES:
        return [spec.name]
    variable, names = _LIBRARIES[spec.name]
    from_env = os.environ.get(variable)
    if from_env:
        return [from_env]
    platform = "linux" if sys.platform.startswith("linux") else sys.platform
    return list(names.get(platform, ()))


def library_overridden(spec: DelegateSpec) -> bool:
    """True if an environment variable names `spec`'s library."""
    variable = _LIBRARIES.get(spec.name, (None,))[0]
    return bool(variable and os.environ.get(variable))


def load_library_delegate(
    backend: Backend, spec: DelegateSpec
) -> tuple[Any, str]:
    """Loads a "library" delegate; returns (delegate, library path).

    Raises:
        DelegateUnavailableError: no candidate library loaded (the message
            gives every candidate's reason).
    """
    candidates = library_candidates(spec)
    if not candidates:
        variable, _ = _LIBRARIES[spec.name]
        raise DelegateUnavailableError(
            f"The {spec.name!r} delegate has no standard library on "
            f"{sys.platform}; set {variable} to the path of its delegate "
            "library."
        )
    reasons = []
    for library in candidates:
        # check with a plain dlopen first: the interpreter's Delegate class
        # prints a stray "Exception ignored" traceback from its destructor
        # when the file is missing or is not a delegate
        try:
            handle = ctypes.CDLL(library)
        except OSError as exc:
            # dlopen's message already names the file
            reasons.append(str(exc))
            continue
        if not hasattr(handle, "tflite_plugin_create_delegate"):
            reasons.append(
                f"{library} is not a TFLite delegate (no "
                "tflite_plugin_create_delegate symbol)"
            )
            continue
        try:
            return backend.load_delegate(library, spec.options), library
        except (ValueError, RuntimeError) as exc:
            reasons.append(f"{library}: {exc}".strip())
    hint = ""
    if spec.name in _LIBRARIES:
        hint = f" Set {_LIBRARIES[spec.name][0]} to its path if installed."
    raise DelegateUnavailableError(
        f"The {spec.name!r} delegate did not load ({'; '.join(reasons)})."
        + hint
    )


def delegation_summary(interpreter: Any) -> tuple[int, list[str]] | None:
    """(delegate node count, op names left to the CPU) of an allocated graph.

    The interpreter lists every node, including the ones a delegate
    replaced, so we walk back from the graph outputs: a tensor made by a
    DELEGATE node needs that node's inputs; one made by a plain op means
    that op still runs outside any delegate. Returns None when the
    interpreter does not expose its nodes.
    """
    # A private LiteRT call (behind _compat.litert), kept on purpose: the
    # DELEGATE nodes (and the tensors each one covers) exist only in the
    # interpreter's execution plan after allocation. The file holds the plan
    # before delegation (runtime/model_file.py reads exactly the other
    # nodes), and LiteRT 2.3's Interpreter has no public node list.
    try:
        ops = litert_compat.ops_details(interpreter)
    except (AttributeError, RuntimeError, ValueError):
        return None
    producer: dict[int, Any] = {}
    delegate_nodes = 0
    for op in ops:
        is_delegate = op["op_name"] == "DELEGATE"
        delegate_nodes += is_delegate
        for tensor in op["outputs"]:
            # a DELEGATE node overrides the op it replaced
            if is_delegate or int(tensor) not in producer:
                producer[int(tensor)] = op
    needed = [int(d["index"]) for d in interpreter.get_output_details()]
    visited: set[int] = set()
    leftovers: list[str] = []
    while needed:
        op = producer.get(needed.pop())
        if op is None or op["index"] in visited:
            continue
        visited.add(op["index"])
        if op["op_name"] != "DELEGATE":
            leftovers.append(op["op_name"])
        needed.extend(int(t) for t in op["inputs"] if t >= 0)
    return delegate_nodes, leftovers
