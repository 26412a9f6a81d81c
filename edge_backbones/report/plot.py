"""The Pareto figure: latency against fidelity, one panel per device.

Each model is a line through its modes (a marker per mode) at each thread
count; the dashed red line is the cosine budget, and the fastest mode that
meets it is ringed in red. The Keras float model, the fidelity reference, is
a dotted vertical line at its latency. Needs matplotlib (the `report`
extra), imported here only, with the Agg backend so no display is needed.
"""

import io
from collections.abc import Mapping
from typing import Any

from edge_backbones.core import modes
from edge_backbones.errors import require
from edge_backbones.report.deployment import is_simulated

__all__ = ["pareto_png"]

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


def pareto_png(merged: Mapping[str, Any], dpi: int = 110) -> bytes:
    """PNG bytes of the latency-vs-min-cosine figure of a merged report.

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
        _draw_device(ax, rows, color_of, merged["min_cos"])
        # what the cosines compare with (the benchmarks compare with
        # PyTorch; the report with Keras)
        reference = merged.get("reference", "Keras float")
        ax.set_ylabel(f"min cosine over pyramid levels vs {reference}")
        ax.set_title(device)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def _draw_device(ax, rows, color_of, min_cos):
    lines = _tflite_lines(rows)
    sizes = {size for _, size, _ in lines}
    for (model, size, threads), points in sorted(lines.items()):
        label = f"{model}{f' @{size}' if len(sizes) > 1 else ''}, {threads} thr"
        _draw_modes(ax, points, color_of[model], label, threads)
    for row in rows:
        if row["kind"] == "keras":
            ax.axvline(
                row["latency_ms"]["median"],
                linestyle=":" if row["threads"] == 1 else "-.",
                color=color_of[row["model"]["name"]],
                label=f"{row['model']['name']}, Keras TF, {row['threads']} thr",
            )
    ax.axhline(
        min_cos,
        color="crimson",
        linestyle="--",
        linewidth=0.8,
        label=f"budget cos >= {min_cos}",
    )
    _style_axes(ax)


def _tflite_lines(rows):
    """(model, "HxW", threads) -> the rows drawn as one line."""
    lines = {}
    for row in rows:
        if (
            row["kind"] == "tflite"
            and row["min_cosine"] is not None
            and not is_simulated(row)  # not a device's latency
        ):
            # one line per input size too: the modes of a model at two
            # sizes are two trade-offs (and `best` is marked per size)
            _, height, width, _ = row["input"]["shape"]
            key = (row["model"]["name"], f"{height}x{width}", row["threads"])
            lines.setdefault(key, []).append(row)
    return lines


def _draw_modes(ax, points, color, label, threads):
    """One model's modes as a line, a marker per mode, the best ringed."""
    points.sort(key=lambda r: r["latency_ms"]["median"])
    ax.plot(
        [p["latency_ms"]["median"] for p in points],
        [_clip(p["min_cosine"]) for p in points],
        color=color,
        alpha=0.6,
        label=label,
        linestyle="-" if threads == 1 else "--",
    )
    for point in points:
        x = point["latency_ms"]["median"]
        y = _clip(point["min_cosine"])
        marker = _marker(point["mode"])
        ax.scatter(x, y, color=color, zorder=3, marker=marker)
        ax.annotate(
            point["mode"],
            (x, y),
            textcoords="offset points",
            xytext=(4, 4),
            fontsize=7,
        )
        if point["best"]:
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
