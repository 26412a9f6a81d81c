"""The comparison's outputs: Markdown table, strict JSON, Pareto plot, and
the block docs/results/peers.md shows (`readme_block`)."""

import re

from edge_backbones.atomic_io import write_file_atomic

__all__ = [
    "markdown",
    "pareto",
    "readme_block",
    "replace_readme_block",
    "table",
]

README_BEGIN = (
    "<!-- peers table: begin (python -m benchmarks.peers --readme) -->"
)
README_END = "<!-- peers table: end -->"
_HEADER = (
    "| tool | mode | ops | whole graph on XNNPACK | × our fp32 latency "
    "| worst cosine | worst SQNR dB |\n|---|---|---|---|---|---|---|"
)


def _xnnpack_cell(row):
    if row["whole_graph_on_xnnpack"] is None:
        return "unknown"
    if row["whole_graph_on_xnnpack"]:
        return "yes"
    left = row["cpu_fallback_ops"] or {}
    kinds = ", ".join(
        f"{op} {n}" for op, n in sorted(left.items(), key=lambda i: -i[1])
    )
    return (
        f"no ({row['xnnpack_partitions']} partitions; "
        f"{sum(left.values())} ops on CPU kernels: {kinds})"
    )


def _number(value, digits):
    return "exact" if value is None else f"{value:.{digits}f}"


def _masks_cell(row):
    masks = row.get("mask_agreement")
    if not masks:
        return "n/a"
    return f"{100 * masks['mean']:.2f} % / {100 * masks['min']:.2f} %"


def table(rows):
    """The Markdown table of the rows (errors as rows of their own); rows
    of a segmentation checkpoint get a mask agreement column."""
    masks = any("mask_agreement" in row for row in rows)
    header = _HEADER
    if masks:
        top, rule = _HEADER.split("\n")
        header = (
            f"{top} mask agreement vs PyTorch (mean / worst image) |\n"
            f"{rule}---|"
        )
    lines = [header]
    blanks = " | | | | |" + (" |" if masks else "")
    for row in rows:
        head = f"| {row['tool']} | `{row['mode']}` |"
        if row["error"]:
            error = row["error"].replace("|", "/").replace("\n", " ")
            lines.append(f"{head} failed: {error[:300]}{blanks}")
            continue
        ratio = row["latency_vs_our_fp32"]
        lines.append(
            f"{head} {row['ops']} | {_xnnpack_cell(row)} | "
            f"{'n/a' if ratio is None else f'{ratio:.2f}'} | "
            f"{_number(row['worst_cosine'], 5)} | "
            f"{_number(row['worst_sqnr_db'], 1)} |"
            + (f" {_masks_cell(row)} |" if masks else "")
        )
    return "\n".join(lines)


def _provenance(result):
    cpu = result["cpu"]
    height, width = result["image_size"]
    return (
        f"`{result['command']}` at {height}×{width}, {cpu['model']} "
        f"({cpu['cores']} cores; AVX-512 VNNI: "
        f"{'yes' if 'avx512_vnni' in cpu['flags'] else 'no'}), "
        f"ai-edge-litert {result['versions'].get('ai-edge-litert')}, "
        f"{result['args']['threads']} threads, {result['args']['rounds']} "
        f"interleaved rounds of {result['args']['runs']} runs, load average "
        f"{result['cpu']['load_average'][0]:.1f} at the start"
    )


def markdown(result):
    """The whole Markdown page of one run."""
    versions = ", ".join(f"{k} {v}" for k, v in result["versions"].items())
    return (
        f"# edge_backbones and its peers on one checkpoint\n\n"
        f"{result['checkpoint']}; {result['holdout_images']} held-out "
        f"photos against the PyTorch float model, worst "
        f"{'output' if result.get('task') == 'segmentation' else 'level'}; "
        f"{result['calibration_images']} photos calibrate.\n\n"
        f"{table(result['rows'])}\n\n"
        f"Made by {_provenance(result)}. Versions: {versions}. "
        f"{result['timing_note']}\n"
    )


def readme_block(result):
    """What the README shows between its markers."""
    return (
        f"{README_BEGIN}\n{table(result['rows'])}\n\n"
        f"Made by {_provenance(result)}. {result['timing_note']}\n"
        f"{README_END}"
    )


def replace_readme_block(readme_path, result):
    """Rewrites the README's table from `result` (atomically)."""
    with open(readme_path, encoding="utf-8") as f:
        text = f.read()
    pattern = re.compile(
        re.escape(README_BEGIN) + ".*?" + re.escape(README_END), re.S
    )
    if not pattern.search(text):
        from edge_backbones.errors import InputError

        raise InputError(
            f"{readme_path} has no peers table block; put the two lines "
            f"{README_BEGIN!r} and {README_END!r} where it belongs."
        )
    new = pattern.sub(lambda _: readme_block(result), text)
    write_file_atomic(readme_path, new.encode("utf-8"))


def pareto(result):
    """PNG bytes: the report's Pareto figure, one line per tool."""
    from edge_backbones.report.plot import pareto_png

    height, width = result["image_size"]
    device = f"{result['cpu']['model']}, {result['args']['threads']} threads"
    timed = [r for r in result["rows"] if not r["error"] and r["latency_ms"]]
    passing = [r for r in timed if r["worst_cosine"] >= result["min_cos"]]
    best = min(passing, key=lambda r: r["latency_ms"]["median"], default=None)
    rows = [
        {
            "kind": "tflite",
            "device": device,
            "model": {"name": r["tool"]},
            "mode": r["mode"],
            "threads": result["args"]["threads"],
            "input": {"shape": [1, height, width, 3]},
            "latency_ms": {"median": r["latency_ms"]["median"]},
            "min_cosine": r["worst_cosine"],
            "best": r is best,
        }
        for r in timed
    ]
    merged = {"devices": [{"name": device}], "rows": rows}
    return pareto_png(
        {**merged, "min_cos": result["min_cos"], "reference": "PyTorch float"}
    )
