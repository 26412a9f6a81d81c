"""Renders a merged report as Markdown, self-contained HTML and CSV.

Markdown and HTML are built from one list of blocks (headings, paragraphs,
tables, the figure), so both always say the same thing. Every table sits
under its device's description: CPU, OS, runtime versions, weights, and the
runs (id, time, command) its rows came from.
"""

import base64
import csv
import datetime
import html
import io
import os
from collections.abc import Mapping
from typing import Any

from edge_backbones.atomic_io import dumps_json, write_file_atomic
from edge_backbones.report.deployment import deployment_table, is_simulated
from edge_backbones.report.merge import MASK_FIELDS
from edge_backbones.report.records import row_key as _row_key
from edge_backbones.text import megabytes

__all__ = ["render_markdown", "render_html", "render_csv", "write_report"]

PNG_NAME = "pareto.png"
# latency vs mask agreement, for reports with segmenters
MASKS_PNG_NAME = "pareto_masks.png"
_CSV_COLUMNS = """
    device run_id measured kind model weights params mode recipe
    input_height input_width input_dtype threads backend delegate
    fully_delegated cpu_ops latency_median_ms latency_p5_ms latency_p95_ms
    latency_mean_ms latency_std_ms latency_runs init_ms size_bytes
    peak_rss_mb macs gmacs_per_s min_cosine min_sqnr_db sqnr_exact
    fidelity_images mask_agreement mask_agreement_mean miou_vs_float
    label_miou label_pixel_accuracy
    fidelity_levels speedup_vs_fp32 speedup_vs_keras
    meets_budget best artifact sha256 cpu_model os runtime
    gpu_device software_driver
    sam_part sam_mask_iou_mean sam_mask_iou_worst sam_iou_prediction_max_error
""".split()
# stands in for the timings of a row run on a software GPU driver
SOFTWARE = "software driver"


def _fmt(value, digits=2):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _cos(value):
    # cosines live near 1: six decimals separate 0.9990 from 0.9999
    return "-" if value is None else f"{value:.6f}"


def _sqnr(row):
    # every level exact: no finite SQNR exists (see export.verify)
    return "exact" if row.get("sqnr_exact") else _fmt(row["min_sqnr_db"], 1)


def _runtime(device):
    versions = device.get("versions", {})
    # the last one is what android_demo's device JSON records
    for dist in (
        "ai-edge-litert",
        "tflite-runtime",
        "com.google.ai.edge.litert:litert",
    ):
        if dist in versions:
            return f"{dist} {versions[dist]}"
    return "unknown runtime"


def _mode_label(row):
    if row["kind"] == "keras":
        return "Keras fp32 (TF)"
    if row["kind"] == "gpu":
        return f"{row['mode']} on {row.get('gpu_device') or 'a GPU'}"
    part = (row.get("sam") or {}).get("part")
    if part:  # a SAM pair's two rows: the decoder's is per prompt
        part = " SAM " + part + (" per prompt" if part == "decoder" else "")
    return row["mode"] + (part or "") + (" ★" if row["best"] else "")


def _delegate_label(row):
    if row["kind"] == "keras":
        return row["backend"]
    coverage = ""
    if row.get("fully_delegated") is True:
        coverage = " (all ops)"
    elif row.get("fully_delegated") is False:
        left = sum((row.get("cpu_ops") or {}).values())
        coverage = f" (partial: {left} ops on CPU)" if left else " (partial)"
    if is_simulated(row):
        coverage += " — simulated: not device speed"
    return f"{row.get('delegate') or 'none'}{coverage}"


def _input_label(row):
    _, height, width, _ = row["input"]["shape"]
    return f"{height}x{width}"


_EMULATED = " (emulated, not Pi speed)"


def _latency_table(rows, emulated=False):
    ms = _EMULATED if emulated else ""
    headers = [
        *("model", "mode", "input", "threads", f"median ms{ms}"),
        *(f"p5 ms{ms}", f"p95 ms{ms}", "size MB", "peak RSS MiB"),
        *("GMAC/s", "min cos"),
        *("min SQNR dB", "x fp32 tflite", "x Keras TF", "delegate", "run"),
    ]
    body = []
    for row in rows:
        latency = row["latency_ms"]
        artifact = row.get("artifact") or {}
        size = artifact.get("size_bytes")
        is_keras = row["kind"] == "keras"
        if row.get("software_driver"):
            latency = {"median": SOFTWARE, "p5": SOFTWARE, "p95": SOFTWARE}
        body.append(
            [
                row["model"]["name"],
                _mode_label(row),
                _input_label(row),
                str(row["threads"]),
                _fmt(latency["median"]),
                _fmt(latency["p5"]),
                _fmt(latency["p95"]),
                _fmt(megabytes(size) if size else None),
                _fmt(row.get("peak_rss_mb"), 1),
                SOFTWARE
                if row.get("software_driver")
                else _fmt(row.get("gmacs_per_s")),
                "reference" if is_keras else _cos(row["min_cosine"]),
                "reference" if is_keras else _sqnr(row),
                _fmt(row["speedup_vs_fp32"]),
                _fmt(row["speedup_vs_keras"]),
                _delegate_label(row),
                row["run_id"],
            ]
        )
    return headers, body


def _pct(value):
    return "-" if value is None else f"{100 * value:.2f} %"


def has_masks(rows: Any) -> bool:
    """Whether any row is a segmenter's with mask figures."""
    return any(r.get("mask_agreement") is not None for r in rows)


def _masks_table(rows, min_mask_agreement):
    """A segmenter's rows: its masks against the float model's and, with
    labels, against the photos' label masks."""
    headers = [
        *("model", "mode", "input", "threads", "median ms"),
        *("mask agreement (worst)", "mask agreement (mean)"),
        *("mIoU vs float", "true mIoU", "pixel accuracy"),
        f"meets >= {min_mask_agreement}",
    ]
    body = []
    for row in rows:
        if row.get("mask_agreement") is None or row["kind"] == "keras":
            continue
        latency = row["latency_ms"]["median"]
        body.append(
            [
                row["model"]["name"],
                _mode_label(row),
                _input_label(row),
                str(row["threads"]),
                SOFTWARE if row.get("software_driver") else _fmt(latency),
                _pct(row["mask_agreement"]),
                _pct(row.get("mask_agreement_mean")),
                _fmt(row.get("miou_vs_float"), 4),
                _fmt(row.get("label_miou"), 4),
                _pct(row.get("label_pixel_accuracy")),
                "yes" if row["mask_agreement"] >= min_mask_agreement else "no",
            ]
        )
    return headers, body


def _fidelity_table(rows):
    headers = [
        *("model", "mode", "input", "level", "cosine", "SQNR dB"),
        *("max abs", "images", "source", "verified on"),
    ]
    body, seen = [], set()
    for row in rows:
        fidelity = row.get("fidelity")
        artifact = (row.get("artifact") or {}).get("sha256")
        if not fidelity or artifact in seen:
            continue
        seen.add(artifact)
        for level, values in fidelity.get("levels", {}).items():
            body.append(
                [
                    row["model"]["name"],
                    row["mode"],
                    _input_label(row),
                    level,
                    _cos(values.get("cosine")),
                    "exact"
                    if values.get("exact")
                    else _fmt(values.get("sqnr_db"), 1),
                    _fmt(values.get("max_abs"), 4),
                    _fmt(fidelity.get("images")),
                    fidelity.get("source", "-"),
                    _verified_label(fidelity.get("verified_on")),
                ]
            )
    return headers, body


def _sam_table(rows):
    """Per SAM model, mode and thread count: encoder time, decoder time
    per prompt, their ratio, and the decoder's mask IoU vs float."""
    headers = [
        *("model", "mode", "input", "threads", "encoder ms"),
        *("decoder ms per prompt", "decoder / encoder", "mask IoU mean"),
        *("mask IoU worst", "IoU-pred error"),
    ]
    parts = {}
    for row in rows:
        sam = row.get("sam")
        if row["kind"] == "tflite" and sam:
            key = (row["model"]["name"], row["mode"], row["threads"])
            parts.setdefault(key, {})[sam["part"]] = row
    body = []
    for (name, mode, threads), pair in parts.items():
        encoder, decoder = pair.get("encoder"), pair.get("decoder")
        encoder_ms = encoder["latency_ms"]["median"] if encoder else None
        decoder_ms = decoder["latency_ms"]["median"] if decoder else None
        sam = (decoder or {}).get("sam") or {}
        body.append(
            [
                name,
                mode,
                _input_label(encoder) if encoder else "-",
                str(threads),
                _fmt(encoder_ms),
                _fmt(decoder_ms),
                _fmt(decoder_ms / encoder_ms, 4)
                if encoder_ms and decoder_ms
                else "-",
                _fmt(sam.get("mask_iou_mean"), 4),
                _fmt(sam.get("mask_iou_worst"), 4),
                _fmt(sam.get("iou_prediction_max_error"), 4),
            ]
        )
    return headers, body


def _verified_label(verified_on):
    if not verified_on:
        return "-"
    label = (
        f"{verified_on.get('arch')} {verified_on.get('runtime')} "
        f"{verified_on.get('delegate')}"
    )
    if verified_on.get("emulated"):
        label += f" ({verified_on['emulated']})"
    return label


def _thermal_notes(device, rows):
    """Sentences naming the rows timed while the board throttled."""
    notes = []
    if device.get("emulated"):
        notes.append(
            f"Emulated ({device['emulated']}): latencies and GMAC/s "
            "are the emulator's, not a Pi's speed."
        )
    throttled = []
    for row in rows:
        reading = (row.get("thermal") or {}).get("throttled") or {}
        if reading.get("now"):
            throttled.append(
                f"{row['model']['name']} {row['mode']} threads "
                f"{row['threads']} ({', '.join(reading['now'])})"
            )
    if throttled:
        notes.append("Throttled while timed: " + "; ".join(throttled) + ".")
    temperatures = [
        max(t.values())
        for row in rows
        if (t := (row.get("thermal") or {}).get("temperatures_c"))
    ]
    if temperatures:
        notes.append(f"CPU temperature up to {max(temperatures):.1f} C.")
    return [("p", note) for note in notes]


def _device_blocks(device, runs, rows, min_mask_agreement=None):
    blocks = _device_description(device, rows)
    for run in runs:
        blocks += _run_blocks(run, rows)
    blocks += _thermal_notes(device, rows)
    blocks.append(
        ("table", *_latency_table(rows, bool(device.get("emulated"))))
    )
    blocks += [
        ("h3", f"Deployment per artifact ({device['name']})"),
        ("table", *deployment_table(rows)),
    ]
    if has_masks(rows):
        blocks += [
            ("h3", f"Masks per artifact ({device['name']})"),
            (
                "p",
                "Share of pixels whose class matches the float model's on "
                "the held-out photos (worst image and mean), mIoU taking "
                "the float masks as truth, and with `--labels` the true "
                "mIoU and pixel accuracy against the photos' label masks "
                "(255 ignored).",
            ),
            (
                "table",
                *_masks_table(rows, min_mask_agreement),
            ),
        ]
    sam = _sam_table(rows)
    if sam[1]:
        blocks += [
            ("h3", f"Segment Anything per mode ({device['name']})"),
            ("table", *sam),
        ]
    fidelity = _fidelity_table(rows)
    if fidelity[1]:
        blocks += [
            ("h3", f"Fidelity per level ({device['name']})"),
            ("table", *fidelity),
        ]
    return blocks


def _device_description(device, rows):
    """The device's heading, hardware, software and weights."""
    cpu, system = device["cpu"], device["os"]
    versions = ", ".join(f"{k} {v}" for k, v in device["versions"].items())
    weights = sorted(
        {f"{r['model']['name']}: {r['model'].get('weights')}" for r in rows}
    )
    return [
        ("h2", f"Device: {device['name']}"),
        (
            "p",
            f"CPU: {cpu['model']} ({cpu['logical_cores']} logical cores"
            f"{', board ' + cpu['board'] if cpu.get('board') else ''}). "
            f"OS: {system['platform']}. "
            # a phone's device JSON (android_demo) has no Python
            + (f"Python {device['python']}. " if device.get("python") else "")
            + f"Runtime: {_runtime(device)}.",
        ),
        ("p", f"Versions: {versions}."),
        ("p", "Weights: " + "; ".join(weights) + "."),
    ]


def _run_blocks(run, rows):
    """A run's settings and command, and what it failed to measure."""
    settings = run.get("settings", {})
    blocks = [
        (
            "p",
            f"Run {run['run_id']}: started {run['started']}, finished "
            f"{run.get('finished', 'not finished (interrupted)')}; threads "
            f"{settings.get('threads')}, {settings.get('runs')} timed runs "
            f"after {settings.get('warmup')} warm-up; command: "
            f"`{run.get('command') or '(python API)'}`.",
        )
    ]
    failures = settings.get("source", {}).get("export_failures")
    if failures:
        blocks.append(
            ("p", f"Not in the table (failed export): {' | '.join(failures)}")
        )
    failed = _unresolved_failures(run, rows)
    if failed:
        blocks.append(
            (
                "p",
                "Not in the table (FAILED in this run): "
                + " | ".join(f"{f['what']}: {f['reason']}" for f in failed),
            )
        )
    return blocks


def _unresolved_failures(run, rows):
    """The run's failures that no row (e.g. from a --resume) has since
    measured."""
    measured = {_row_key(row) for row in rows}
    paths = {(row.get("artifact") or {}).get("path") for row in rows}

    def resolved(failure):
        key = failure.get("key")
        if key is None:  # an unreadable artifact: resolved once timed
            return failure["what"] in paths
        key = tuple(tuple(p) if isinstance(p, list) else p for p in key)
        return key in measured

    return [f for f in run.get("failures", []) if not resolved(f)]


def _blocks(merged, png_name, masks_png_name=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    blocks = [
        ("h1", "edge_backbones: accuracy vs latency"),
        (
            "p",
            f"Rendered {now.isoformat(timespec='seconds')} from "
            f"{len(merged['devices'])} device result file(s). Latency is "
            "per image at batch 1. Fidelity compares each artifact's "
            "pyramid outputs with the Keras float model's on held-out "
            "photos (cosine and SQNR per level; min over levels shown). "
            "'x fp32 tflite' and 'x Keras TF' are speed-ups over those "
            "baselines timed on the same device and thread count. Peak RSS "
            "is that of a fresh process loading and running the model. "
            "★ = the fastest mode of a "
            f"model meeting min cos >= {merged['min_cos']} at that thread "
            "count.",
        ),
    ]
    if png_name:
        blocks.append(("img", png_name, "latency vs fidelity"))
    if masks_png_name:
        blocks.append(("img", masks_png_name, "latency vs mask agreement"))
    for device in merged["devices"]:
        name = device["name"]
        runs = [r for r in merged["runs"] if r["device"] == name]
        rows = [r for r in merged["rows"] if r["device"] == name]
        blocks += _device_blocks(
            device, runs, rows, merged.get("min_mask_agreement")
        )
    return blocks


def _md_cell(text):
    return str(text).replace("|", "\\|")


def render_markdown(
    merged: Mapping[str, Any],
    png_name: str | None = PNG_NAME,
    masks_png_name: str | None = None,
) -> str:
    """The report as Markdown, linking the figure `png_name` (None: no
    figure) and a segmenter report's `masks_png_name`."""
    lines = []
    for kind, *content in _blocks(merged, png_name, masks_png_name):
        if kind in ("h1", "h2", "h3"):
            lines += ["#" * int(kind[1]) + " " + content[0], ""]
        elif kind == "p":
            lines += [content[0], ""]
        elif kind == "img":
            lines += [f"![{content[1]}]({content[0]})", ""]
        else:
            headers, body = content
            lines.append("| " + " | ".join(headers) + " |")
            lines.append("|" + "---|" * len(headers))
            for row in body:
                lines.append("| " + " | ".join(map(_md_cell, row)) + " |")
            lines.append("")
    return "\n".join(lines)


_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:90em}"
    "table{border-collapse:collapse;margin:1em 0;font-size:90%}"
    "th,td{border:1px solid #ccc;padding:.25em .5em;text-align:right}"
    "th{background:#f2f2f2}td:first-child,td:nth-child(2){text-align:left}"
    "img{max-width:100%}code{background:#f6f6f6}"
)


def render_html(
    merged: Mapping[str, Any],
    png_bytes: bytes | None = None,
    masks_png_bytes: bytes | None = None,
) -> str:
    """One HTML file with the figures inlined, so it can be mailed as is."""
    images = {PNG_NAME: png_bytes, MASKS_PNG_NAME: masks_png_bytes}
    esc = html.escape
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        "<title>edge_backbones report</title>",
        f"<style>{_STYLE}</style></head><body>",
    ]
    blocks = _blocks(
        merged,
        PNG_NAME if png_bytes else None,
        MASKS_PNG_NAME if masks_png_bytes else None,
    )
    for kind, *content in blocks:
        if kind in ("h1", "h2", "h3"):
            parts.append(f"<{kind}>{esc(content[0])}</{kind}>")
        elif kind == "p":
            # the only markup in our paragraphs is `code`
            text = esc(content[0]).split("`")
            parts.append(
                "<p>"
                + "".join(
                    f"<code>{t}</code>" if i % 2 else t
                    for i, t in enumerate(text)
                )
                + "</p>"
            )
        elif kind == "img":  # only there with its bytes
            data = base64.b64encode(images[content[0]] or b"").decode("ascii")
            parts.append(
                f"<img alt='{esc(content[1])}' "
                f"src='data:image/png;base64,{data}'>"
            )
        else:
            headers, body = content
            parts.append(
                "<table><tr>"
                + "".join(f"<th>{esc(h)}</th>" for h in headers)
                + "</tr>"
            )
            for row in body:
                parts.append(
                    "<tr>"
                    + "".join(f"<td>{esc(str(c))}</td>" for c in row)
                    + "</tr>"
                )
            parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _csv_record(row, devices):
    device = devices[row["device"]]
    latency = row["latency_ms"]
    artifact = row.get("artifact") or {}
    fidelity = row.get("fidelity") or {}
    _, height, width, _ = row["input"]["shape"]
    software = bool(row.get("software_driver"))
    if software:
        # no number that could be read as a GPU speed
        latency = dict.fromkeys(latency)
    return {
        "device": row["device"],
        "run_id": row["run_id"],
        "measured": row.get("measured"),
        "kind": row["kind"],
        "model": row["model"]["name"],
        "weights": row["model"].get("weights"),
        "params": row["model"].get("params"),
        "mode": row["mode"],
        "recipe": row.get("recipe"),
        "input_height": height,
        "input_width": width,
        "input_dtype": row["input"].get("dtype"),
        "threads": row["threads"],
        "backend": row.get("backend"),
        "delegate": row.get("delegate"),
        "fully_delegated": row.get("fully_delegated"),
        "cpu_ops": dumps_json(row["cpu_ops"]) if row.get("cpu_ops") else None,
        "latency_median_ms": latency["median"],
        "latency_p5_ms": latency["p5"],
        "latency_p95_ms": latency["p95"],
        "latency_mean_ms": latency["mean"],
        "latency_std_ms": latency["std"],
        "latency_runs": latency["runs"],
        "init_ms": row.get("init_ms"),
        "size_bytes": artifact.get("size_bytes"),
        "peak_rss_mb": row.get("peak_rss_mb"),
        "macs": row.get("macs"),
        "gmacs_per_s": None if software else row.get("gmacs_per_s"),
        "min_cosine": row["min_cosine"],
        "min_sqnr_db": row["min_sqnr_db"],
        "sqnr_exact": row.get("sqnr_exact", False),
        "fidelity_images": fidelity.get("images"),
        **{field: row.get(field) for field in MASK_FIELDS},
        "fidelity_levels": dumps_json(fidelity.get("levels"))
        if fidelity
        else None,
        "speedup_vs_fp32": row["speedup_vs_fp32"],
        "speedup_vs_keras": row["speedup_vs_keras"],
        "meets_budget": row["meets_budget"],
        "best": row["best"],
        "artifact": artifact.get("path"),
        "sha256": artifact.get("sha256"),
        "cpu_model": device["cpu"]["model"],
        "os": device["os"]["platform"],
        "runtime": _runtime(device),
        "gpu_device": row.get("gpu_device"),
        "software_driver": row.get("software_driver"),
        "sam_part": (row.get("sam") or {}).get("part"),
        "sam_mask_iou_mean": (row.get("sam") or {}).get("mask_iou_mean"),
        "sam_mask_iou_worst": (row.get("sam") or {}).get("mask_iou_worst"),
        "sam_iou_prediction_max_error": (row.get("sam") or {}).get(
            "iou_prediction_max_error"
        ),
    }


def render_csv(merged: Mapping[str, Any]) -> str:
    """One CSV line per row of the merged report."""
    devices = {d["name"]: d for d in merged["devices"]}
    out = io.StringIO()
    writer = csv.DictWriter(out, _CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in merged["rows"]:
        writer.writerow(_csv_record(row, devices))
    return out.getvalue()


def write_report(
    merged: Mapping[str, Any], out: str, figure: bool = True
) -> dict[str, str]:
    """Writes report.md, report.html, report.csv and pareto.png to `out`
    (and pareto_masks.png, latency vs mask agreement, for segmenters).

    Returns {format: path}. The figure needs matplotlib (the `report`
    extra); without it the error names the extra to install, and with
    `figure=False` the tables are written without it.

    Raises:
        MissingDependencyError: `figure` and no matplotlib.
    """
    paths = {
        "md": os.path.join(out, "report.md"),
        "html": os.path.join(out, "report.html"),
        "csv": os.path.join(out, "report.csv"),
    }
    png = masks_png = None
    if figure:
        from edge_backbones.report.plot import MASKS, pareto_png

        png = pareto_png(merged)
        paths["png"] = os.path.join(out, PNG_NAME)
        write_file_atomic(paths["png"], png)
        if has_masks(merged["rows"]):
            masks_png = pareto_png(merged, metric=MASKS)
            paths["masks_png"] = os.path.join(out, MASKS_PNG_NAME)
            write_file_atomic(paths["masks_png"], masks_png)
    write_file_atomic(
        paths["md"],
        render_markdown(
            merged,
            PNG_NAME if png else None,
            MASKS_PNG_NAME if masks_png else None,
        ),
    )
    write_file_atomic(paths["html"], render_html(merged, png, masks_png))
    write_file_atomic(paths["csv"], render_csv(merged))
    return paths
