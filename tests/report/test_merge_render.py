"""`report merge`: several devices' results -> Markdown, HTML, CSV, PNG."""

import base64
import csv
import io
import json
import struct
import sys

import pytest

from edge_backbones.cli import main
from edge_backbones.errors import MetadataError, MissingDependencyError
from edge_backbones.report.merge import load_and_merge, merge_results
from edge_backbones.report.plot import pareto_png
from edge_backbones.report.records import load_results
from edge_backbones.report.render import render_csv, render_html


def _png_size(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def _median(row):
    return row["latency_ms"]["median"]


def test_ratios_are_against_same_device_and_threads(device_results):
    merged = load_and_merge(device_results)
    assert [d["name"] for d in merged["devices"]] == ["laptop", "pi"]
    for path in device_results:
        device = load_results(path)["device"]["name"]
        rows = [r for r in merged["rows"] if r["device"] == device]
        for row in rows:
            fp32 = [
                r
                for r in rows
                if r["mode"] == "fp32" and r["threads"] == row["threads"]
            ]
            assert row["speedup_vs_fp32"] == pytest.approx(
                _median(fp32[0]) / _median(row)
            )
            assert row["speedup_vs_keras"] is None  # no TF in this run
            levels = row["fidelity"]["levels"].values()
            assert row["min_cosine"] == min(v["cosine"] for v in levels)
    # laptop timed 1 and 2 threads, the pi 1
    assert sorted(
        (r["device"], r["threads"])
        for r in merged["rows"]
        if r["mode"] == "fp32"
    ) == [("laptop", 1), ("laptop", 2), ("pi", 1)]


def test_budget_picks_fastest_mode_that_meets_it(device_results):
    results = [load_results(p) for p in device_results]
    rows = merge_results(results)["rows"]
    fp32_cos = min(r["min_cosine"] for r in rows if r["mode"] == "fp32")
    dyn_cos = min(r["min_cosine"] for r in rows if r["mode"] == "dynamic")
    assert dyn_cos < fp32_cos  # int8 weights cost some fidelity

    # a budget only fp32 meets: fp32 is picked everywhere
    strict = merge_results(results, min_cos=fp32_cos)["rows"]
    assert {r["mode"] for r in strict if r["best"]} == {"fp32"}
    # a budget both meet: the faster of the two, per device and threads
    loose = merge_results(results, min_cos=dyn_cos)["rows"]
    groups = {}
    for row in loose:
        groups.setdefault((row["device"], row["threads"]), []).append(row)
    for group in groups.values():
        fastest = min(group, key=_median)
        assert [r["best"] for r in group] == [r is fastest for r in group]
    with pytest.raises(ValueError, match="cosine budget"):
        merge_results(results, min_cos=1.5)


def test_merge_cli_writes_every_format(device_results, tmp_path):
    out = tmp_path / "merged"
    code = main(
        [
            "report",
            "merge",
            *map(str, device_results),
            "--out",
            str(out),
            "--min-cos",
            "0.99",
        ]
    )
    assert code == 0
    merged = load_and_merge(device_results, 0.99)
    markdown = (out / "report.md").read_text()
    assert "## Device: laptop" in markdown and "## Device: pi" in markdown
    assert "min cos >= 0.99 " in markdown
    # peak RSS is read in KiB and divided by 1024: MiB, unlike size's MB
    assert "| peak RSS MiB |" in markdown and "size MB" in markdown
    for run in merged["runs"]:
        assert run["command"] is None or run["command"] in markdown
        assert markdown.count(f"| {run['run_id']} |") == sum(
            r["run_id"] == run["run_id"] for r in merged["rows"]
        )
    # a panel per device
    width, _ = _png_size((out / "pareto.png").read_bytes())
    single, _ = _png_size(pareto_png(load_and_merge(device_results[:1])))
    assert width == 2 * single

    html = (out / "report.html").read_text()
    encoded = html.split("data:image/png;base64,")[1].split("'")[0]
    _png_size(base64.b64decode(encoded))
    assert "<h2>Device: pi</h2>" in html and "src='pareto.png'" not in html

    table = list(csv.DictReader(io.StringIO((out / "report.csv").read_text())))
    assert len(table) == len(merged["rows"])
    for record, row in zip(table, merged["rows"], strict=True):
        assert float(record["latency_median_ms"]) == _median(row)
        assert record["run_id"] == row["run_id"]
        assert record["device"] == row["device"]
        assert (
            json.loads(record["fidelity_levels"]) == (row["fidelity"]["levels"])
        )


def test_merge_refuses_bad_inputs(device_results, tmp_path):
    twice = [device_results[0], device_results[0]]
    with pytest.raises(MetadataError, match="one file per device"):
        load_and_merge(twice)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"schema": "edge_backbones.tflite/1"}))
    with pytest.raises(MetadataError, match="not a report result file"):
        load_and_merge([str(other)])
    assert main(["report", "merge", str(other), "--out", str(tmp_path)]) == 2


def test_figure_without_matplotlib_names_the_extra(device_results, monkeypatch):
    merged = load_and_merge(device_results)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(
        MissingDependencyError, match=r"edge-backbones\[report\]"
    ):
        pareto_png(merged)
    # the tables do not need it
    assert "<table>" in render_html(merged)
    assert render_csv(merged).count("\n") == len(merged["rows"]) + 1


def test_bad_budget_is_refused_before_anything_is_timed(
    tmp_path, monkeypatch, capsys
):
    from edge_backbones.report import collect

    def timed(*args, **kwargs):
        raise AssertionError("timed rows before checking --min-cos")

    monkeypatch.setattr(collect, "collect_artifacts", timed)
    argv = ["report", "--artifacts", str(tmp_path), "--out", str(tmp_path)]
    # 99.9 is a percentage, not a cosine
    assert main([*argv, "--min-cos", "99.9"]) == 2
    assert "min_cos=99.9 is not a cosine budget" in capsys.readouterr().err


def test_figure_draws_one_line_per_input_size(device_results):
    import copy

    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from edge_backbones.report.plot import _draw_device

    merged = load_and_merge(device_results)
    rows = [
        r
        for r in merged["rows"]
        if r["device"] == "pi" and r["kind"] == "tflite"
    ]
    # the same model and modes, also timed at another input size
    larger = copy.deepcopy(rows)
    for row in larger:
        row["input"]["shape"] = [1, 128, 128, 3]
        row["latency_ms"]["median"] *= 4
    fig, ax = plt.subplots()
    try:
        _draw_device(ax, rows + larger, {"mit_tiny": "C0"}, 0.5)
        polylines = [
            line
            for line in ax.get_lines()
            if line.get_label().startswith("mit_tiny")
        ]
        labels = sorted(line.get_label() for line in polylines)
    finally:
        plt.close(fig)
    assert labels == ["mit_tiny @128x128, 1 thr", "mit_tiny @64x64, 1 thr"]
    for line in polylines:
        assert len(line.get_xdata()) == len(rows)


def _segmenter_results(device_results):
    """The results with each .tflite row also as a segmenter's: every
    mode's masks and latency nearly alike, so their labels would collide
    if drawn at one offset."""
    import copy

    results = [load_results(p) for p in device_results]
    for result in results:
        seg_rows = []
        for row in result["rows"]:
            if row["kind"] != "tflite":
                continue
            seg = copy.deepcopy(row)
            seg["model"]["name"] = "seg_tiny"
            # three modes at one spot, a fourth far off (the axes' span)
            near = len(seg_rows) < 3
            agreement = 0.995 if near else 0.9
            seg["latency_ms"]["median"] = (
                1 + 0.01 * len(seg_rows) if near else 20
            )
            seg["task"] = {
                "kind": "segmentation",
                "num_classes": 5,
                "verification": {
                    "images": 4,
                    "mask_agreement": {"min": agreement, "mean": 0.998},
                    "miou_vs_float": 0.97,
                    "min_mask_agreement": 0.9,
                    "holdout": "photos",
                    "labels": {
                        "mean_iou": 0.41,
                        "pixel_accuracy": 0.8,
                        "pixels": 100,
                        "source": "labels",
                    },
                },
            }
            seg_rows.append(seg)
        result["rows"] += seg_rows
    return results


def test_segmenter_rows_carry_mask_columns_and_figure(device_results, tmp_path):
    pytest.importorskip("matplotlib")
    from matplotlib import pyplot as plt

    from edge_backbones.report.plot import MASKS, MODE_LABEL, pareto_figure
    from edge_backbones.report.render import render_markdown, write_report

    merged = merge_results(_segmenter_results(device_results))
    seg = [r for r in merged["rows"] if r["model"]["name"] == "seg_tiny"]
    backbone = [r for r in merged["rows"] if r["model"]["name"] == "mit_tiny"]
    assert seg and all(r["label_miou"] == 0.41 for r in seg)
    assert all(r["mask_agreement"] is None for r in backbone)
    records = list(csv.DictReader(io.StringIO(render_csv(merged))))
    seg_csv = [r for r in records if r["model"] == "seg_tiny"]
    assert {r["miou_vs_float"] for r in seg_csv} == {"0.97"}
    assert {r["label_pixel_accuracy"] for r in seg_csv} == {"0.8"}
    markdown = render_markdown(merged, None, "pareto_masks.png")
    assert "### Masks per artifact (laptop)" in markdown
    assert "| 99.50 % | 99.80 % | 0.9700 | 0.4100 | 80.00 % | yes |" in (
        markdown
    )
    assert "| 90.00 % | 99.80 % | 0.9700 | 0.4100 | 80.00 % | no |" in (
        markdown
    )
    assert "![latency vs mask agreement](pareto_masks.png)" in markdown

    fig = pareto_figure(merged, metric=MASKS)
    try:
        ax = fig.axes[0]
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert "seg_tiny, 1 thr" in legend and "seg_tiny, 2 thr" in legend
        assert "budget mask agreement >= 0.99" in legend
        assert not any(t.startswith("mit_tiny") for t in legend)
        renderer = fig.canvas.get_renderer()
        boxes = [
            t.get_window_extent(renderer)
            for t in ax.texts
            if t.get_gid() == MODE_LABEL
        ]
        assert len(boxes) == len([r for r in seg if r["device"] == "laptop"])
        for i, a in enumerate(boxes):
            for b in boxes[i + 1 :]:
                assert not a.overlaps(b), (a, b)
    finally:
        plt.close(fig)
    paths = write_report(merged, str(tmp_path))
    assert _png_size(open(paths["masks_png"], "rb").read())[0] > 0
