"""Layers shared by the families, written for the edge.

Each is built from TFLite builtins that XNNPACK and the int16x8 quantizer
accept, and keeps every tensor at rank <= 4.
"""

import contextlib
import contextvars
import dataclasses
import math
from collections.abc import Iterator
from typing import Any

import keras
from keras import ops

__all__ = [
    "EdgeLayerNormalization",
    "TraceForm",
    "trace_form",
    "integer_layer_norm",
    "integer_softmax",
    "polynomial_sin",
    "sin_cos",
    "softmax_float32",
]


@dataclasses.dataclass(frozen=True)
class TraceForm:
    """How the layers below trace: the integer-friendly forms are on only
    inside `integer_layer_norm()` / `integer_softmax()`."""

    integer_layer_norm: bool = False
    integer_softmax: bool = False
    # > 0 inside `polynomial_sin()`: the largest |argument| sines take
    sin_max_argument: float = 0.0


# context-local (per thread and task), not process-wide: a trace in one
# thread never changes the graph another thread traces
_TRACE_FORM = contextvars.ContextVar(
    "edge_backbones_trace_form",
    default=TraceForm(),  # noqa: B039 - frozen, so never mutated
)


def trace_form() -> Any:
    """The `TraceForm` layers traced now (in this context) follow."""
    return _TRACE_FORM.get()


@contextlib.contextmanager
def _traced_as(**changes):
    token = _TRACE_FORM.set(dataclasses.replace(_TRACE_FORM.get(), **changes))
    try:
        yield
    finally:
        _TRACE_FORM.reset(token)


# TFLite fuses x * rsqrt(max(sum(x^2), eps)) into L2_NORMALIZATION only
# when eps is small; 1e-4 is below its limit for every width we export
_L2_EPSILON_LIMIT = 1e-4


@contextlib.contextmanager
def integer_layer_norm() -> Iterator[None]:
    """Layer norms traced inside lower to TFLite's L2_NORMALIZATION.

    LayerNorm(x) = sqrt(C) * c / ||c|| * gamma + beta with c = x - mean(x):
    the same maths (up to where eps matters, variance < ~1e-7), but the
    int8 L2_NORMALIZATION kernel sums the squares of the int8 input in
    int32 per token, where the plain form quantizes the squared deviations
    and their mean per tensor, so tokens of small variance round to 0 and
    rsqrt saturates at 1/sqrt(eps). XNNPACK has no L2_NORMALIZATION
    kernel, so only full-int8 graphs are traced this way.
    """
    with _traced_as(integer_layer_norm=True):
        yield


@contextlib.contextmanager
def integer_softmax() -> Iterator[None]:
    """Softmaxes traced inside are exp(x - max) * (1 / sum) in builtins.

    TFLite's int8 SOFTMAX writes its output at the fixed scale 1/256, so
    where attention spreads over N keys (weights near 1/N) each weight
    keeps log2(256/N) bits: none at N = 256 (MiT-B0 stage 1 at 512x512).
    The decomposed form quantizes exp(x - max), in (0, 1], and the final
    product at calibrated scales; 1 / sum is rsqrt(sum)^2 (TFLite has no
    int8 DIV). Same maths in float.
    """
    with _traced_as(integer_softmax=True):
        yield


@contextlib.contextmanager
def polynomial_sin(max_argument: float) -> Iterator[None]:
    """Sines traced inside (`sin_cos`) are MUL/ADD/SUB only.

    TFLite's int16x8 quantizer has no SIN kernel. Inside, sin and cos of
    x with |x| <= `max_argument` are a Taylor polynomial at x / 2^k
    (|x / 2^k| <= 1/2, error < 1e-8) followed by k double-angle steps,
    sin 2a = 2 sin a cos a, cos 2a = cos^2 a - sin^2 a: each step doubles
    the error it is handed (float32: 6e-6 at |x| <= 30, SAM's trained
    encoding; 9e-5 at 500), and int16 activations keep ~|x| * 3e-5, as
    much as an int16 x itself holds. Same maths.
    """
    if not max_argument > 0:
        raise ValueError(f"max_argument must be > 0, not {max_argument}")
    with _traced_as(sin_max_argument=float(max_argument)):
        yield


def sin_cos(x: Any) -> tuple[Any, Any]:
    """(sin x, cos x): SIN ops, or the polynomial form inside
    `polynomial_sin()`. The cosine is a shifted sine: TFLite has a SIN
    builtin on every delegate, COS on fewer."""
    limit = trace_form().sin_max_argument
    if not limit:
        return ops.sin(x), ops.sin(x + 0.5 * math.pi)
    doublings = max(0, math.ceil(math.log2(limit / 0.5)))
    a = x * (0.5**doublings)
    a2 = a * a
    sin = a * (1.0 + a2 * (-1 / 6 + a2 * (1 / 120 - a2 / 5040)))
    cos = 1.0 + a2 * (-0.5 + a2 * (1 / 24 + a2 * (-1 / 720 + a2 / 40320)))
    for _ in range(doublings):
        # (c - s)(c + s), not 1 - 2 s^2: a rotation's square, so a norm
        # off 1 stays off by the same factor (float32 at |x| = 500: 9e-5
        # against 4e-4)
        sin, cos = 2.0 * sin * cos, (cos - sin) * (cos + sin)
    return sin, cos


@keras.saving.register_keras_serializable(package="edge_backbones")
class EdgeLayerNormalization(keras.layers.Layer):
    """Layer normalization over the last axis, as SUB/MUL/MEAN/RSQRT only.

    Keras' `LayerNormalization` lowers through `tf.nn.moments` and
    `batch_normalization` to SQUARED_DIFFERENCE and NEG, which the int16x8
    converter rejects ("not yet supported for op: 'NEG'") and which full-int8
    conversion silently leaves in float. Same maths, same weight names
    (`gamma`, `beta`), so checkpoints map one to one.
    """

    def __init__(self, epsilon: float = 1e-6, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.epsilon = epsilon
        # gamma and beta stay float32 under mixed precision (see call)
        self.autocast = False

    def build(self, input_shape: Any) -> None:
        dim = input_shape[-1]
        self.gamma = self.add_weight(
            name="gamma", shape=(dim,), initializer="ones"
        )
        self.beta = self.add_weight(
            name="beta", shape=(dim,), initializer="zeros"
        )

    def call(self, x: Any) -> Any:
        # Statistics in float32 whatever the policy, as Keras'
        # LayerNormalization computes them: a float16 variance overflows.
        # Under float32 both casts are no-ops and emit nothing.
        x = ops.cast(x, "float32")
        mean = ops.mean(x, axis=-1, keepdims=True)
        centered = x - mean
        if trace_form().integer_layer_norm:
            return self._l2_normalized(centered)
        variance = ops.mean(centered * centered, axis=-1, keepdims=True)
        normalized = centered * ops.rsqrt(variance + self.epsilon)
        # Keras may still autocast reads of gamma/beta (a layer called
        # outside a model under a mixed policy): cast them back explicitly.
        gamma = ops.cast(self.gamma, "float32")
        beta = ops.cast(self.beta, "float32")
        return ops.cast(normalized * gamma + beta, self.compute_dtype)

    def _l2_normalized(self, centered):
        import tensorflow as tf

        dim = centered.shape[-1]
        # rank 2: a rank-changing reshape keeps the converter from fusing
        # the SUB into SQUARED_DIFFERENCE, which would hide the pattern
        rows = ops.reshape(centered, (-1, dim))
        epsilon = min(dim * self.epsilon, _L2_EPSILON_LIMIT)
        unit = tf.math.l2_normalize(rows, axis=-1, epsilon=epsilon)
        unit = tf.reshape(unit, tf.shape(centered))
        return unit * (self.gamma * dim**0.5) + self.beta

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "epsilon": self.epsilon}


def softmax_float32(logits: Any, compute_dtype: Any) -> Any:
    """Softmax over the last axis computed in float32, cast to the policy's.

    Attention under a float16 policy: exponentials of float16 logits lose
    the small weights; keras-hub's attention layers softmax in float32 too.
    """
    logits = ops.cast(logits, "float32")
    if trace_form().integer_softmax:
        shifted = ops.exp(logits - ops.max(logits, axis=-1, keepdims=True))
        # the sum as a product with ones, which lowers to FULLY_CONNECTED:
        # TFLite's reference int8 SUM kernel sums wrong (tiny MiT: off by
        # up to 168 steps, fidelity 0.70), its FC kernels sum right
        ones = ops.ones((shifted.shape[-1], 1), dtype=shifted.dtype)
        inverse = ops.rsqrt(ops.matmul(shifted, ones))
        weights = shifted * (inverse * inverse)
    else:
        weights = ops.softmax(logits, axis=-1)
    return ops.cast(weights, compute_dtype)
