"""Which TFLite interpreter runs the model: LiteRT, tflite-runtime or tf.lite.

The three packages expose the same Python `Interpreter` API (same module
layout, since tflite-runtime and tf.lite are LiteRT's ancestors), so one
`Backend` record holds what differs: where the classes come from.
`tf.lite.Interpreter` is deprecated and is the last resort: on this project's
int8 models it gave different (worse) results with XNNPACK than LiteRT 2.x.
"""

import dataclasses
import importlib
import warnings
from types import ModuleType
from typing import Any

from edge_backbones._compat import tensorflow as tf_compat
from edge_backbones.errors import InputError, MissingDependencyError

__all__ = ["BACKENDS", "Backend", "load_backend"]

# name -> module holding Interpreter, load_delegate and OpResolverType, in
# the order we try them
_MODULES = {
    "litert": "ai_edge_litert.interpreter",
    "tflite_runtime": "tflite_runtime.interpreter",
    "tf": tf_compat.INTERPRETER_MODULE,
}
BACKENDS = tuple(_MODULES)
# name -> the pip package that provides it
_PACKAGES = {
    "litert": "ai-edge-litert",
    "tflite_runtime": "tflite-runtime",
    "tf": "tensorflow",
}


@dataclasses.dataclass(frozen=True)
class Backend:
    """One installed interpreter package: its name and its module.

    The interpreter packages ship no type information, so what comes out
    of them (the interpreter class, its delegates) is `Any`.
    """

    name: str
    module: ModuleType  # the interpreter module

    @property
    def Interpreter(self) -> Any:  # noqa: N802 - mirrors the class it returns
        return self.module.Interpreter

    @property
    def OpResolverType(self) -> Any:  # noqa: N802
        return self.module.OpResolverType

    def load_delegate(
        self, library: str, options: dict[str, Any] | None = None
    ) -> Any:
        return self.module.load_delegate(library, options)

    @property
    def version(self) -> str:
        package = self.module.__name__.split(".")[0]
        return str(
            getattr(importlib.import_module(package), "__version__", "?")
        )


def load_backend(name: str | None = None) -> Backend:
    """The interpreter backend `name`, or the first installed one.

    Raises:
        InputError: `name` is not one of `BACKENDS`.
        MissingDependencyError: that backend (or, for None, every one) is
            not installed.
    """
    if name is not None and name not in _MODULES:
        raise InputError(
            f"Unknown interpreter backend {name!r}; use one of "
            f"{list(BACKENDS)} or None (the first installed)."
        )
    errors: dict[str, ImportError] = {}
    for candidate in (name,) if name else BACKENDS:
        try:
            module = importlib.import_module(_MODULES[candidate])
        except ImportError as exc:
            errors[candidate] = exc
            continue
        if candidate == "tf" and name is None:
            warnings.warn(
                "Neither ai-edge-litert nor tflite-runtime is installed; "
                "falling back to the deprecated tf.lite.Interpreter, whose "
                "XNNPACK path gave wrong int8 results here (MiT-B0 int8: "
                "cosine 0.50 to float at P4 vs 0.99 with LiteRT). Install "
                "it with: pip install ai-edge-litert",
                stacklevel=3,
            )
        return Backend(candidate, module)
    if name is not None:
        # the caller asked for this one: installing another would not help
        raise MissingDependencyError(
            f"The {name!r} interpreter backend is not installed "
            f"({errors[name]}). Install it with: pip install "
            f"{_PACKAGES[name]}, or pass backend=None to use the first "
            f"installed of {list(BACKENDS)}."
        )
    tried = "; ".join(f"{key}: {exc}" for key, exc in errors.items())
    raise MissingDependencyError(
        f"No TFLite interpreter is installed (tried {tried}). Install LiteRT "
        "with: pip install ai-edge-litert"
    )
