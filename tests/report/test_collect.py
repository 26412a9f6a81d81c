"""`report --artifacts`: timing with the runtime alone (no TensorFlow, no
matplotlib), row-by-row saving and `--resume`."""

import os
import shutil
import subprocess
import sys

import pytest

from edge_backbones.errors import MetadataError, ModelFileError
from edge_backbones.report import collect
from edge_backbones.report.records import load_results
from edge_backbones.runtime.macs import count_macs
from edge_backbones.runtime.metadata import read_metadata
from edge_backbones.runtime.model_file import read_model_file

# importing either of these writes a marker file, then fails
_BLOCKER = """
import os
open(os.path.join(os.environ["IMPORT_MARKERS"], __name__), "w").close()
raise ImportError(__name__ + " is blocked: the report must not import it")
"""


def _metadata(path):
    return read_metadata(str(path), read_model_file(str(path)))


def test_artifacts_report_imports_no_tensorflow(tiny_artifacts, tmp_path):
    blocked = tmp_path / "blocked"
    markers = tmp_path / "markers"
    markers.mkdir()
    for name in ("tensorflow", "keras", "tf_keras"):
        (blocked / name).mkdir(parents=True)
        (blocked / name / "__init__.py").write_text(_BLOCKER)
    # a device with only the runtime install has no matplotlib either
    (blocked / "matplotlib").mkdir()
    (blocked / "matplotlib" / "__init__.py").write_text(
        "raise ImportError('not installed')"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(blocked), os.environ.get("PYTHONPATH", "")]
        ),
        "IMPORT_MARKERS": str(markers),
    }
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_backbones.cli",
            "report",
            "--artifacts",
            str(tiny_artifacts),
            "--device-name",
            "pi 4",
            "--out",
            str(out),
            "--threads",
            "1",
            "--runs",
            "3",
            "--warmup",
            "1",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(os.listdir(markers)) == []
    # progress went to stderr, one line per finished row
    assert proc.stderr.count(" ms median (p5 ") == 2

    results = load_results(out / "pi_4.json")
    rows = results["rows"]
    assert [row["mode"] for row in rows] == ["fp32", "dynamic"]
    run_id = results["runs"][0]["run_id"]
    for row in rows:
        path = tiny_artifacts / f"mit_tiny_64x64_{row['mode']}.tflite"
        meta = _metadata(path)
        # fidelity is the exporter's, reused as recorded
        assert row["fidelity"]["levels"] == meta["fidelity"]["levels"]
        assert row["macs"] == count_macs(str(path))["total"] > 0
        median_s = row["latency_ms"]["median"] / 1e3
        assert row["gmacs_per_s"] == pytest.approx(row["macs"] / median_s / 1e9)
        assert row["artifact"]["size_bytes"] == os.path.getsize(path)
        assert row["threads"] == 1 and row["run_id"] == run_id
        assert row["peak_rss_mb"] > 0
    assert results["device"]["name"] == "pi 4"
    assert results["runs"][0]["finished"]
    for name in ("report.md", "report.html", "report.csv"):
        assert (out / name).stat().st_size > 0
    assert not (out / "pareto.png").exists()
    assert "no figure: `matplotlib`" in proc.stderr
    assert '"edge-backbones[report]"' in proc.stderr


def test_interrupted_report_keeps_rows_and_resume_skips_them(
    tiny_artifacts, tmp_path, monkeypatch
):
    real_worker = collect._run_worker
    calls = []

    def interrupted_after_one(job):
        calls.append(job)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_worker(job)

    monkeypatch.setattr(collect, "_run_worker", interrupted_after_one)
    args = (str(tiny_artifacts), str(tmp_path), "laptop")
    with pytest.raises(KeyboardInterrupt):
        collect.collect_artifacts(*args, threads=(1,), runs=3, warmup=1)
    first = load_results(tmp_path / "laptop.json")
    assert len(first["rows"]) == 1
    assert "finished" not in first["runs"][0]

    calls.clear()
    monkeypatch.setattr(
        collect,
        "_run_worker",
        lambda job: calls.append(job) or real_worker(job),
    )
    collect.collect_artifacts(
        *args, threads=(1,), runs=3, warmup=1, resume=True
    )
    assert [job["path"].rsplit("_", 1)[-1] for job in calls] == [
        "dynamic.tflite"
    ]
    done = load_results(tmp_path / "laptop.json")
    assert [row["mode"] for row in done["rows"]] == ["fp32", "dynamic"]
    assert done["rows"][0] == first["rows"][0]
    assert [r["run_id"] for r in done["runs"]] == [
        row["run_id"] for row in done["rows"]
    ]

    # resuming into another device's file would mix devices
    with pytest.raises(MetadataError, match="--device-name"):
        collect.ResultFile(
            str(tmp_path / "laptop.json"),
            {**done["device"], "name": "pi"},
            {"run_id": "x"},
            resume=True,
        )


def test_files_without_our_metadata_are_skipped(tiny_artifacts, tmp_path):
    tf = pytest.importorskip("tensorflow")
    model = tf.keras.Sequential(
        [tf.keras.Input((4,)), tf.keras.layers.Dense(2)]
    )
    foreign = tmp_path / "foreign.tflite"
    foreign.write_bytes(
        tf.lite.TFLiteConverter.from_keras_model(model).convert()
    )
    with pytest.raises(ModelFileError, match="No .tflite with"):
        collect.find_artifacts(str(tmp_path))
    fp32 = "mit_tiny_64x64_fp32.tflite"
    shutil.copy(tiny_artifacts / fp32, tmp_path / fp32)
    found = collect.find_artifacts(str(tmp_path))
    assert [os.path.basename(a["path"]) for a in found] == [fp32]
    with pytest.raises(ModelFileError, match="is not a folder"):
        collect.find_artifacts(str(tmp_path / fp32))
