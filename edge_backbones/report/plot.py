"""The Pareto figures: latency against fidelity, one panel per device.

Each model is a line through its modes (a marker per mode) at each thread
count; the dashed red line is the budget, and the fastest mode that meets
the cosine budget is ringed in red. The Keras float model, the fidelity
reference, is a dotted vertical line at its latency. Fidelity is the
minimum cosine over pyramid levels (`COSINE`) or, for segmenters, the
worst held-out image's mask agreement with the float model (`MASKS`).
Mode labels are placed one by one where they overlap no earlier label or
marker. Needs matplotlib (the `report` extra), imported here only, with
the Agg backend so no display is needed.
"""

import dataclasses
import io
from collections.abc import Mapping
from typing import Any

from edge_backbones.core import modes
from edge_backbones.errors import require
from edge_backbones.report.deployment import is_simulated

__all__ = ["COSINE", "MASKS", "Metric", "pareto_figure", "pareto_png"]


@dataclasses.dataclass(frozen=True)
class Metric:
    """What the figure's y axis shows."""

    row_key: str  # the merged row's field
    budget_key: str  # the merged report's budget for it
    axis_label: str  # with {reference}: what it is compared with
    budget_label: str  # with {budget}


COSINE = Metric(
    "min_cosine",
    "min_cos",
    "min cosine over pyramid levels vs {reference}",
    "budget cos >= {budget}",
)
MASKS = Metric(
    "mask_agreement",
    "min_mask_agreement",
    "mask agreement with {reference} (worst held-out image)",
    "budget mask agreement >= {budget}",
)

# one marker per mode, in the registry's order (a name it does not know,
# from an older report, gets "X")
_MARKER_CYCLE = ("o", "s", "p", "D", "^", "h", "v", "<", "P", "*", ">", "d")
# cosines are plotted on a logit axis so 0.99, 0.999 and 0.9999 are spread
# apart; an exact 1.0 (or a broken model's <= 0) is clipped onto the axis
_COS_CLIP = (1e-3, 1 - 1e-7)


def _marker(mode):
    known = modes.names()
    if mode not in known:
        return "X"
    return _MARKER_CYCLE[known.index(mode) % len(_MARKER_CYCLE)]


def _clip(cosine):
    return min(max(cosine, _COS_CLIP[0]), _COS_CLIP[1])


def pareto_png(
    merged: Mapping[str, Any], dpi: int = 110, metric: Metric = COSINE
) -> bytes:
    """PNG bytes of the latency-vs-`metric` figure of a merged report.

    Raises:
        MissingDependencyError: matplotlib (the `report` extra) is not
            installed.
    """
    fig = pareto_figure(merged, dpi, metric)  # checks for matplotlib
    from matplotlib import pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def pareto_figure(
    merged: Mapping[str, Any], dpi: int = 110, metric: Metric = COSINE
) -> Any:
    """The matplotlib Figure `pareto_png` renders (close it when done).

    Raises:
        MissingDependencyError: matplotlib (the `report` extra) is not
            installed.
    """
    matplotlib = require("matplotlib", "report")
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    devices = [d["name"] for d in merged["devices"]]
    fig, axes = plt.subplots(
        1,
        len(devices),
        figsize=(6.5 * len(devices), 6.5),
        squeeze=False,
        dpi=dpi,
    )
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    models = sorted({r["model"]["name"] for r in merged["rows"]})
    color_of = {m: colors[i % len(colors)] for i, m in enumerate(models)}
    for ax, device in zip(axes[0], devices, strict=True):
        rows = [r for r in merged["rows"] if r["device"] == device]
        budget = merged.get(metric.budget_key, merged["min_cos"])
        _draw_device(ax, rows, color_of, budget, metric)
        # what the figures compare with (the benchmarks compare with
        # PyTorch; the report with Keras)
        reference = merged.get("reference", "Keras float")
        ax.set_ylabel(metric.axis_label.format(reference=reference))
        ax.set_title(device)
    fig.tight_layout()
    renderer = fig.canvas.get_renderer()
    for ax in axes[0]:
        place_labels(ax, renderer)
    return fig


def _draw_device(ax, rows, color_of, budget, metric=COSINE):
    lines = _tflite_lines(rows, metric)
    sizes = {size for _, size, _ in lines}
    for (model, size, threads), points in sorted(lines.items()):
        label = f"{model}{f' @{size}' if len(sizes) > 1 else ''}, {threads} thr"
        _draw_modes(ax, points, color_of[model], label, threads, metric, budget)
    for row in rows:
        if row["kind"] == "keras":
            ax.axvline(
                row["latency_ms"]["median"],
                linestyle=":" if row["threads"] == 1 else "-.",
                color=color_of[row["model"]["name"]],
                label=f"{row['model']['name']}, Keras TF, {row['threads']} thr",
            )
    ax.axhline(
        budget,
        color="crimson",
        linestyle="--",
        linewidth=0.8,
        label=metric.budget_label.format(budget=budget),
    )
    # the budget line's own label, at its right end, above the line
    ax.annotate(
        metric.budget_label.format(budget=budget),
        (1, _clip(budget)),
        xycoords=("axes fraction", "data"),
        textcoords="offset points",
        xytext=(-4, 3),
        ha="right",
        fontsize=7,
        color="crimson",
        gid="budget",
    )
    _style_axes(ax)


def _tflite_lines(rows, metric=COSINE):
    """(model, "HxW", threads) -> the rows drawn as one line."""
    lines = {}
    for row in rows:
        if (
            row["kind"] == "tflite"
            and row.get(metric.row_key) is not None
            and not is_simulated(row)  # not a device's latency
        ):
            # one line per input size too: the modes of a model at two
            # sizes are two trade-offs (and `best` is marked per size)
            _, height, width, _ = row["input"]["shape"]
            key = (row["model"]["name"], f"{height}x{width}", row["threads"])
            lines.setdefault(key, []).append(row)
    return lines


def _draw_modes(ax, points, color, label, threads, metric, budget):
    """One model's modes as a line, a marker per mode, the best ringed
    (the merge's pick for cosines; the fastest meeting `budget` else)."""
    points.sort(key=lambda r: r["latency_ms"]["median"])
    meeting = [p for p in points if p[metric.row_key] >= budget]
    best = {id(p) for p in points if p["best"]}
    if metric is not COSINE:
        best = {id(meeting[0])} if meeting else set()
    ax.plot(
        [p["latency_ms"]["median"] for p in points],
        [_clip(p[metric.row_key]) for p in points],
        color=color,
        alpha=0.6,
        label=label,
        linestyle="-" if threads == 1 else "--",
    )
    for point in points:
        x = point["latency_ms"]["median"]
        y = _clip(point[metric.row_key])
        marker = _marker(point["mode"])
        ax.scatter(x, y, color=color, zorder=3, marker=marker)
        ax.annotate(
            point["mode"],
            (x, y),
            textcoords="offset points",
            xytext=_OFFSETS[0],
            fontsize=7,
            gid=MODE_LABEL,
        )
        if id(point) in best:
            ring = {"facecolors": "none", "edgecolors": "crimson"}
            ax.scatter(x, y, s=260, zorder=4, linewidths=1.5, **ring)


def _style_axes(ax):
    from matplotlib import ticker

    ax.set_xscale("log")
    ax.set_yscale("logit")
    # "0.999" reads better than the logit axis' default "1 - 10^-3"
    ax.yaxis.set_major_formatter(
        ticker.FuncFormatter(lambda y, _: f"{y:.7f}".rstrip("0"))
    )
    ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel("median latency per image, ms (log)")
    ax.grid(True, which="both", alpha=0.3)
    # below the axes, where it hides no point
    ax.legend(
        fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2
    )


# the `gid` of a mode's label (what `place_labels` moves)
MODE_LABEL = "mode"
# where a mode's label may sit, in points from its marker, in order of
# preference: above right, below right, above left, below left, then
# farther out
_OFFSETS = (
    (4, 4),
    (4, -11),
    (-4, 4),
    (-4, -11),
    (4, 13),
    (4, -20),
    (-4, 13),
    (-4, -20),
    (12, -4),
    (-12, -4),
    (4, 22),
    (4, -29),
)


def place_labels(ax: Any, renderer: Any) -> None:
    """Moves each mode label to the first of `_OFFSETS` where it covers no
    earlier label and no marker (else to where it covers the least), so
    modes of similar speed and fidelity stay readable."""
    labels = [t for t in ax.texts if t.get_gid() == MODE_LABEL]
    taken = [t.get_window_extent(renderer) for t in ax.texts]
    taken = [b for t, b in zip(ax.texts, taken, strict=True) if t not in labels]
    markers = _marker_boxes(ax, renderer)
    for label in labels:
        best = (float("inf"), _OFFSETS[0])
        for dx, dy in _OFFSETS:
            label.set_position((dx, dy))
            label.set_horizontalalignment("left" if dx >= 0 else "right")
            box = label.get_window_extent(renderer)
            cost = sum(_overlap(box, other) for other in taken + markers)
            if cost < best[0]:
                best = (cost, (dx, dy))
            if cost == 0:
                break
        dx, dy = best[1]
        label.set_position((dx, dy))
        label.set_horizontalalignment("left" if dx >= 0 else "right")
        taken.append(label.get_window_extent(renderer))


def _marker_boxes(ax, renderer):
    """A small box around every scattered marker, in display pixels."""
    from matplotlib.transforms import Bbox

    half = 3.5 * ax.figure.dpi / 72  # a default marker's half width
    boxes = []
    for collection in ax.collections:
        for x, y in ax.transData.transform(collection.get_offsets()):
            boxes.append(Bbox([[x - half, y - half], [x + half, y + half]]))
    return boxes


def _overlap(a, b):
    """The area two display boxes share."""
    width = min(a.x1, b.x1) - max(a.x0, b.x0)
    height = min(a.y1, b.y1) - max(a.y0, b.y0)
    return max(width, 0) * max(height, 0)
