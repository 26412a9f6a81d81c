"""The report's `gpu` row: which adapter ran it, and never a software
driver's time shown as a GPU speed."""

import copy
import csv
import io
import json

import pytest

from edge_backbones.report.merge import merge_results
from edge_backbones.report.records import load_results
from edge_backbones.report.render import render_csv, render_markdown
from edge_backbones.runtime import gpu_probe
from tests.tiny import TINY_MIT_64

_DEVICE = "SwiftShader Device (Subzero) (software Vulkan)"


def _with_gpu_row(result, software):
    result = copy.deepcopy(result)
    source = next(r for r in result["rows"] if r["mode"] == "dynamic")
    row = copy.deepcopy(source)
    row.update(
        kind="gpu", mode="gpu", delegate="gpu", fully_delegated=True,
        gpu_device=_DEVICE, software_driver=software,
    )  # fmt: skip
    # a figure no other cell can hold, to look for in the output
    row["latency_ms"] = {**row["latency_ms"], "median": 4321.987}
    row["artifact"] = {**row["artifact"], "sha256": "f" * 64}
    result["rows"].append(row)
    return result


def _gpu_cells(merged):
    markdown = render_markdown(merged, png_name=None)
    line = next(
        line for line in markdown.splitlines() if f"gpu on {_DEVICE}" in line
    )
    records = list(csv.DictReader(io.StringIO(render_csv(merged))))
    return line, next(r for r in records if r["kind"] == "gpu")


def test_a_software_gpu_row_shows_no_speed(device_results):
    result = _with_gpu_row(load_results(device_results[1]), software=True)
    merged = merge_results([result])
    row = next(r for r in merged["rows"] if r["kind"] == "gpu")
    assert row["speedup_vs_fp32"] is None and row["best"] is False
    line, record = _gpu_cells(merged)
    assert "4321.99" not in line and "software driver" in line
    assert record["latency_median_ms"] == "" and record["gmacs_per_s"] == ""
    assert record["software_driver"] == "True"
    assert record["gpu_device"] == _DEVICE


def test_a_hardware_gpu_row_is_timed_like_any_other(device_results):
    result = _with_gpu_row(load_results(device_results[1]), software=False)
    merged = merge_results([result])
    line, record = _gpu_cells(merged)
    assert "4321.99" in line and "software driver" not in line
    assert float(record["latency_median_ms"]) == pytest.approx(4321.987)


@pytest.mark.gpu_stage
def test_report_times_gpu_artifacts_on_the_gpu(tmp_path):
    verdict = gpu_probe.gpu_verdict()
    if not verdict.usable:
        pytest.skip(
            f"no usable GPU adapter ({verdict.reason[:200]}); run "
            "benchmarks/gpu/install_software_vulkan.sh and source its "
            "env.sh, as .ci/stages/gpu.sh does"
        )
    import edge_backbones
    from edge_backbones.models.backbone import Backbone
    from edge_backbones.report.collect import collect_artifacts

    backbone = Backbone.from_preset("mit_b0", load_weights=False, **TINY_MIT_64)
    artifacts = tmp_path / "artifacts"
    edge_backbones.export(
        backbone, image_size=64, targets="gpu", out=str(artifacts),
        name="mit_tiny",
    )  # fmt: skip
    path = collect_artifacts(
        str(artifacts), str(tmp_path), "box", runs=2, warmup=1, gpu=True
    )
    with open(path) as f:
        rows = json.load(f)["rows"]
    assert sorted(r["kind"] for r in rows) == ["gpu", "tflite"]
    row = next(r for r in rows if r["kind"] == "gpu")
    assert row["delegate"] == "gpu" and row["fully_delegated"] is True
    assert row["gpu_device"] == verdict.device
    assert row["software_driver"] is verdict.software
    assert row["fidelity"]["source"] == f"export check on {verdict.device}"
    assert min(v["cosine"] for v in row["fidelity"]["levels"].values()) > 0.999
