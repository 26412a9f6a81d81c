"""ViTDet layers (Segment Anything's image encoder), written for the edge.

Every tensor stays at rank <= 4 and every size comes from the static shape
seen at call time, so a backbone traced at batch 1 and a fixed image size
converts to a static TFLite graph. Resizing position embeddings and looking
up relative positions are matmuls of the weights with constant numpy
matrices: they depend on weights only, so the converter folds them away and
no RESIZE/GATHER op reaches the .tflite.
"""

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import numpy.typing as npt
from keras import ops

from edge_backbones.models.layers import softmax_float32

__all__ = [
    "ViTDetAttention",
    "ViTDetPositionEmbedding",
    "ViTDetWindowPartition",
    "ViTDetWindowUnpartition",
    "bicubic_resize_matrix",
    "linear_resize_matrix",
    "relative_position_matrix",
]


def _static_height_width(x, layer):
    height, width = ops.shape(x)[1], ops.shape(x)[2]
    if not isinstance(height, int) or not isinstance(width, int):
        raise ValueError(
            f"{layer.name} needs a static height and width to lay out its "
            f"windows and position tables, but received shape "
            f"{tuple(x.shape)}. Call the backbone on arrays, or trace it "
            "with a fixed image size (e.g. `keras.Input((H, W, 3))`)."
        )
    return height, width


def _source_coordinates(in_size, out_size):
    # PyTorch's `F.interpolate(..., align_corners=False)` pixel centres.
    scale = in_size / out_size
    return (np.arange(out_size, dtype=np.float64) + 0.5) * scale - 0.5


def linear_resize_matrix(
    in_size: int, out_size: int
) -> npt.NDArray[np.float64]:
    """(out, in) matrix of PyTorch's 1-D linear interpolation.

    Same as `F.interpolate(mode="linear", align_corners=False)`, which SAM's
    `get_rel_pos` applies to the relative-position tables.
    """
    src = np.maximum(_source_coordinates(in_size, out_size), 0.0)
    low = np.floor(src).astype(np.int64)
    high = np.minimum(low + 1, in_size - 1)
    frac = src - low
    matrix = np.zeros((out_size, in_size), np.float64)
    rows = np.arange(out_size)
    np.add.at(matrix, (rows, low), 1.0 - frac)
    np.add.at(matrix, (rows, high), frac)
    return matrix


def bicubic_resize_matrix(
    in_size: int, out_size: int
) -> npt.NDArray[np.float64]:
    """(out, in) matrix of PyTorch's bicubic interpolation along one axis.

    Same as `F.interpolate(mode="bicubic", align_corners=False)` (Keys
    kernel, a = -0.75, edge samples clamped), which Detectron2's ViTDet
    `get_abs_pos` uses to fit absolute position embeddings to a new grid.
    Bicubic resizing is separable, so a 2-D resize is `R_h @ P @ R_w^T`.
    """
    a = -0.75
    src = _source_coordinates(in_size, out_size)
    base = np.floor(src).astype(np.int64)
    t = src - base

    def near(d):  # |d| <= 1
        return ((a + 2) * d - (a + 3)) * d * d + 1

    def far(d):  # 1 < |d| < 2
        return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a

    weights = (far(t + 1), near(t), near(1 - t), far(2 - t))
    matrix = np.zeros((out_size, in_size), np.float64)
    rows = np.arange(out_size)
    for offset, weight in zip((-1, 0, 1, 2), weights, strict=True):
        columns = np.clip(base + offset, 0, in_size - 1)
        np.add.at(matrix, (rows, columns), weight)
    return matrix


def relative_position_matrix(
    query_size: int, key_size: int, table_size: int
) -> npt.NDArray[np.float64]:
    """(query * key, table) matrix: SAM's `get_rel_pos` as one linear map.

    Row `q * key_size + k` picks (after resizing the table to
    `2 * max(query_size, key_size) - 1` rows) the embedding of the relative
    offset between query position `q` and key position `k`.
    """
    length = 2 * max(query_size, key_size) - 1
    resize = linear_resize_matrix(table_size, length)
    query_coords = np.arange(query_size)[:, None] * max(
        key_size / query_size, 1.0
    )
    key_coords = np.arange(key_size)[None, :] * max(query_size / key_size, 1.0)
    offsets = query_coords - key_coords
    offsets += (key_size - 1) * max(query_size / key_size, 1.0)
    return resize[offsets.astype(np.int64).reshape(-1)]


@keras.saving.register_keras_serializable(package="edge_backbones")
class ViTDetPositionEmbedding(keras.layers.Layer):
    """Adds absolute position embeddings stored at `grid_size`.

    On another grid the stored embeddings are resized bicubically, as
    Detectron2's ViTDet does (SAM and Hugging Face only run at the
    pretraining grid, so they never resize); bicubic keeps the smooth 2-D
    structure of the pretrained table better than bilinear when the grid
    grows.
    """

    def __init__(self, grid_size: Sequence[int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.grid_size = tuple(grid_size)

    def build(self, input_shape: Any) -> None:
        self.pos_embed = self.add_weight(
            name="pos_embed",
            shape=(1, *self.grid_size, input_shape[-1]),
            initializer="zeros",
        )

    def call(self, x: Any) -> Any:
        height, width = _static_height_width(x, self)
        if (height, width) == self.grid_size:
            return x + self.pos_embed
        grid_h, grid_w = self.grid_size
        dim = self.pos_embed.shape[-1]
        rows = ops.convert_to_tensor(
            bicubic_resize_matrix(grid_h, height), self.compute_dtype
        )
        columns = ops.convert_to_tensor(
            bicubic_resize_matrix(grid_w, width), self.compute_dtype
        )
        table = ops.reshape(self.pos_embed, (grid_h, grid_w * dim))
        table = ops.reshape(ops.matmul(rows, table), (height, grid_w, dim))
        table = ops.reshape(
            ops.transpose(table, (1, 0, 2)), (grid_w, height * dim)
        )
        table = ops.reshape(ops.matmul(columns, table), (width, height, dim))
        table = ops.transpose(table, (1, 0, 2))
        return x + table[None]

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "grid_size": self.grid_size}


@keras.saving.register_keras_serializable(package="edge_backbones")
class ViTDetWindowPartition(keras.layers.Layer):
    """(B, H, W, C) -> (B * nH * nW, ws, ws, C), padding H, W to ws.

    Padded bottom/right with zeros like SAM. The layout goes through
    (B * nH, ws, nW, ws * C) and a 4-D transpose, never a 6-D tensor.
    """

    def __init__(self, window_size: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.window_size = window_size

    def call(self, x: Any) -> Any:
        size = self.window_size
        height, width = _static_height_width(x, self)
        channels = x.shape[-1]
        pad_h, pad_w = -height % size, -width % size
        if pad_h or pad_w:
            x = ops.pad(x, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)))
        windows_w = (width + pad_w) // size
        x = ops.reshape(x, (-1, size, windows_w, size * channels))
        x = ops.transpose(x, (0, 2, 1, 3))
        return ops.reshape(x, (-1, size, size, channels))

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (None, self.window_size, self.window_size, input_shape[-1])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "window_size": self.window_size}


@keras.saving.register_keras_serializable(package="edge_backbones")
class ViTDetWindowUnpartition(keras.layers.Layer):
    """Inverse of `ViTDetWindowPartition`; called on [windows, reference].

    `reference` is the tensor before partitioning: its static height and
    width say how many windows there are and what padding to crop.
    """

    def __init__(self, window_size: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.window_size = window_size

    def call(self, inputs: Any) -> Any:
        windows, reference = inputs
        size = self.window_size
        height, width = _static_height_width(reference, self)
        channels = windows.shape[-1]
        padded_h = height + (-height % size)
        padded_w = width + (-width % size)
        x = ops.reshape(windows, (-1, padded_w // size, size, size * channels))
        x = ops.transpose(x, (0, 2, 1, 3))
        x = ops.reshape(x, (-1, padded_h, padded_w, channels))
        if (padded_h, padded_w) != (height, width):
            x = x[:, :height, :width, :]
        return x

    def compute_output_shape(self, input_shape: Any) -> Any:
        windows_shape, reference_shape = input_shape
        return (*reference_shape[:3], windows_shape[-1])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "window_size": self.window_size}


@keras.saving.register_keras_serializable(package="edge_backbones")
class ViTDetAttention(keras.layers.Layer):
    """Multi-head self-attention with SAM's decomposed relative positions.

    Args:
        num_heads: attention heads; the channel count must divide by it.
        use_bias: whether the fused query/key/value projection has a bias.
        use_rel_pos: add decomposed relative-position biases (MViTv2/SAM).
        rel_pos_size: (height, width) the relative-position tables are
            stored for (the window, or the token grid for global layers);
            other sizes are interpolated linearly like SAM's `get_rel_pos`.

    The relative bias is added to the attention logits viewed as the 4-D
    (B * heads * qh, qw, kh, kw): a height term (.., kh, 1) plus a width
    term (.., 1, kw), each one batched matmul of the queries with a constant
    table, instead of SAM's 5-D einsum.
    """

    def __init__(
        self,
        num_heads: int,
        use_bias: bool = True,
        use_rel_pos: bool = False,
        rel_pos_size: Sequence[int] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if use_rel_pos and rel_pos_size is None:
            raise ValueError(
                "use_rel_pos=True needs rel_pos_size=(height, width), the "
                "grid the relative-position tables are stored for; "
                "received rel_pos_size=None."
            )
        self.num_heads = num_heads
        self.use_bias = use_bias
        self.use_rel_pos = use_rel_pos
        self.rel_pos_size = (
            None if rel_pos_size is None else tuple(rel_pos_size)
        )

    def build(self, input_shape: Any) -> None:
        dim = input_shape[-1]
        if dim % self.num_heads:
            raise ValueError(
                f"{self.name}: {dim} channels do not split into "
                f"{self.num_heads} heads; pick a hidden_size divisible by "
                "num_heads."
            )
        self.head_dim = dim // self.num_heads
        self.qkv = keras.layers.Dense(
            3 * dim, use_bias=self.use_bias, name="qkv", dtype=self.dtype_policy
        )
        self.qkv.build(input_shape)
        self.proj = keras.layers.Dense(
            dim, name="proj", dtype=self.dtype_policy
        )
        self.proj.build((*input_shape[:-1], dim))
        # __init__ refuses use_rel_pos without rel_pos_size
        if self.use_rel_pos and self.rel_pos_size is not None:
            self.rel_pos_h = self.add_weight(
                name="rel_pos_h",
                shape=(2 * self.rel_pos_size[0] - 1, self.head_dim),
                initializer="zeros",
            )
            self.rel_pos_w = self.add_weight(
                name="rel_pos_w",
                shape=(2 * self.rel_pos_size[1] - 1, self.head_dim),
                initializer="zeros",
            )

    def _relative_table(self, table, size):
        # (size, head_dim, size): the table entry for each (query, key)
        # pair, laid out for `queries @ table`.
        lookup = ops.convert_to_tensor(
            relative_position_matrix(size, size, table.shape[0]),
            self.compute_dtype,
        )
        pairs = ops.reshape(ops.matmul(lookup, table), (size, size, -1))
        return ops.transpose(pairs, (0, 2, 1))

    def _add_relative_positions(self, logits, queries, height, width):
        head_dim = self.head_dim
        rel_h = self._relative_table(self.rel_pos_h, height)
        rel_w = self._relative_table(self.rel_pos_w, width)
        queries = ops.reshape(queries, (-1, height, width, head_dim))
        # bias_h[b, y, x, ky] = sum_c q[b, y, x, c] * rel_h[y, c, ky]
        by_row = ops.transpose(queries, (1, 0, 2, 3))
        by_row = ops.reshape(by_row, (height, -1, head_dim))
        bias_h = ops.matmul(by_row, rel_h)
        bias_h = ops.reshape(bias_h, (height, -1, width, height))
        bias_h = ops.transpose(bias_h, (1, 0, 2, 3))
        bias_h = ops.reshape(bias_h, (-1, width, height, 1))
        # bias_w[b, y, x, kx] = sum_c q[b, y, x, c] * rel_w[x, c, kx]
        by_column = ops.transpose(queries, (2, 0, 1, 3))
        by_column = ops.reshape(by_column, (width, -1, head_dim))
        bias_w = ops.matmul(by_column, rel_w)
        bias_w = ops.transpose(bias_w, (1, 0, 2))
        bias_w = ops.reshape(bias_w, (-1, width, 1, width))
        logits = ops.reshape(logits, (-1, width, height, width))
        logits = logits + bias_h + bias_w
        return ops.reshape(logits, (-1, height * width, height * width))

    def call(self, x: Any) -> Any:
        height, width = _static_height_width(x, self)
        tokens = height * width
        heads, head_dim = self.num_heads, self.head_dim
        qkv = ops.reshape(self.qkv(x), (-1, tokens, 3 * heads, head_dim))
        qkv = ops.transpose(qkv, (0, 2, 1, 3))
        queries, keys, values = ops.split(qkv, 3, axis=1)
        queries = ops.reshape(queries, (-1, tokens, head_dim))
        keys = ops.reshape(keys, (-1, tokens, head_dim))
        values = ops.reshape(values, (-1, tokens, head_dim))
        logits = ops.matmul(
            queries * (head_dim**-0.5), ops.transpose(keys, (0, 2, 1))
        )
        if self.use_rel_pos:
            logits = self._add_relative_positions(
                logits, queries, height, width
            )
        weights = softmax_float32(logits, self.compute_dtype)
        x = ops.reshape(
            ops.matmul(weights, values), (-1, heads, tokens, head_dim)
        )
        x = ops.transpose(x, (0, 2, 1, 3))
        x = ops.reshape(x, (-1, height, width, heads * head_dim))
        return self.proj(x)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "use_bias": self.use_bias,
            "use_rel_pos": self.use_rel_pos,
            "rel_pos_size": self.rel_pos_size,
        }
