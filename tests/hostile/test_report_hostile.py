"""Hostile inputs against `report`: bad artifacts among good ones, bad
worker output, edited result files, bad --out folders, and a report killed
mid-way then resumed. The good rows are always kept, every failure is named
with its reason, and every JSON written parses strictly."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from edge_backbones.atomic_io import loads_json_strict
from edge_backbones.cli import main as cli_main
from edge_backbones.errors import MetadataError, ReportError
from edge_backbones.report import collect
from edge_backbones.report.records import load_results
from tests import tiny


@pytest.fixture(scope="module")
def contents(tmp_path_factory):
    return tiny.convert_two_conv_all(
        str(tmp_path_factory.mktemp("hostile_report"))
    )


def _good(folder, contents, name="tiny_fp32.tflite", mode="fp32"):
    key, dtype = ("f32", "float32") if mode == "fp32" else ("int8", "int8")
    os.makedirs(folder, exist_ok=True)
    return tiny.write_artifact(
        os.path.join(folder, name),
        contents[key],
        tiny.artifact_metadata(dtype, mode=mode),
    )


def _strict(path):
    with open(path) as f:
        return loads_json_strict(f.read())


def _report(folder, out, *extra):
    return cli_main([
        "report", "--artifacts", str(folder), "--device-name", "dev",
        "--out", str(out), "--threads", "1", "--runs", "2", "--warmup", "0",
        *extra,
    ])  # fmt: skip


def test_bad_artifacts_among_good_ones(contents, tmp_path, capsys):
    folder = tmp_path / "artifacts"
    good = open(_good(folder, contents), "rb").read()
    (folder / "corrupt.tflite").write_bytes(good[: len(good) // 2])
    flipped = bytearray(good)
    flipped[len(good) // 3] ^= 0x08
    (folder / "flipped.tflite").write_bytes(flipped)
    no_model = tiny.artifact_metadata()
    del no_model["model"]
    tiny.write_artifact(str(folder / "nomodel.tflite"), contents["f32"],
                        no_model)  # fmt: skip
    # a killed export's work folder, with a half-written candidate
    (folder / ".export-k1ll3d").mkdir()
    (folder / ".export-k1ll3d" / "tiny_int8.tflite").write_bytes(good[:100])

    out = tmp_path / "out"
    assert _report(folder, out) == 2
    err = capsys.readouterr().err
    assert "ReportError" in err and "3 artifact(s) or row(s) failed" in err

    results = _strict(out / "dev.json")
    assert [r["artifact"]["path"] for r in results["rows"]] == [
        os.path.join("..", "artifacts", "tiny_fp32.tflite")
    ]
    reasons = {
        os.path.basename(f["what"]): f["reason"]
        for f in results["runs"][0]["failures"]
    }
    assert sorted(reasons) == ["corrupt.tflite", "flipped.tflite",
                               "nomodel.tflite"]  # fmt: skip
    assert "ModelFileError" in reasons["corrupt.tflite"]
    assert "truncated or corrupt" in reasons["corrupt.tflite"]
    assert "IntegrityError" in reasons["flipped.tflite"]
    assert "no 'model' object" in reasons["nomodel.tflite"]
    markdown = (out / "report.md").read_text()
    assert "FAILED in this run" in markdown and "corrupt.tflite" in markdown
    assert "| tiny | fp32 |" in markdown
    assert ".export-" not in markdown + json.dumps(results)


def test_worker_output_that_is_not_a_result(contents, tmp_path, monkeypatch):
    folder = tmp_path / "artifacts"
    _good(folder, contents)
    outputs = iter(["\nWarning: something\nnot json\n",
                    '\n{"backend": "x"}\n'])  # fmt: skip

    def fake_worker(args, **kwargs):
        return subprocess.CompletedProcess(args, 0, next(outputs), "")

    monkeypatch.setattr(collect.subprocess, "run", fake_worker)
    out = tmp_path / "out"
    with pytest.raises(ReportError, match="1 artifact") as info:
        collect.collect_artifacts(str(folder), str(out), "dev", runs=1)
    (failure,) = _strict(info.value.result_path)["runs"][0]["failures"]
    assert "'not json', not its JSON result" in failure["reason"]
    with pytest.raises(ReportError):
        collect.collect_artifacts(str(folder), str(out), "dev", runs=1)
    (failure,) = _strict(info.value.result_path)["runs"][0]["failures"]
    assert "missing ['delegate'" in failure["reason"]


def test_old_artifact_with_infinite_sqnr_reports_exact(contents, tmp_path):
    folder = tmp_path / "artifacts"
    exact = {
        "images": 2,
        "levels": {
            "P1": {"cosine": 1.0, "sqnr_db": float("inf"), "max_abs": 0.0},
            "P2": {"cosine": 1.0, "sqnr_db": float("inf"), "max_abs": 0.0},
        },
    }
    folder.mkdir()
    tiny.write_legacy_artifact(
        str(folder / "old_fp32.tflite"),
        contents["f32"],
        tiny.artifact_metadata(fidelity=exact),
    )
    out = tmp_path / "out"
    assert _report(folder, out) == 0
    (row,) = _strict(out / "dev.json")["rows"]
    assert row["fidelity"]["levels"]["P1"]["sqnr_db"] is None
    assert row["fidelity"]["levels"]["P1"]["exact"] is True
    markdown = (out / "report.md").read_text()
    assert "| tiny | fp32 | 32x32 | P1 | 1.000000 | exact |" in markdown
    with open(out / "report.csv", newline="") as f:
        (csv_row,) = csv.DictReader(f)
    assert csv_row["sqnr_exact"] == "True" and csv_row["min_sqnr_db"] == ""


@pytest.fixture(scope="module")
def measured(contents, tmp_path_factory):
    """A real one-row result file."""
    folder = tmp_path_factory.mktemp("measured")
    _good(folder / "artifacts", contents)
    return collect.collect_artifacts(
        str(folder / "artifacts"), str(folder), "dev", runs=1, warmup=0
    )


def test_row_without_latency(measured, tmp_path, capsys):
    data = _strict(measured)
    del data["rows"][0]["latency_ms"]
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(data))
    with pytest.raises(MetadataError, match="row 0 has no 'latency_ms'"):
        load_results(edited)
    assert cli_main(["report", "merge", str(edited), "--out",
                     str(tmp_path / "m")]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "edited.json" in err and "--resume" in err


def test_bad_out_folders(measured, contents, tmp_path, monkeypatch, capsys):
    # merge --out naming one of its inputs would write into it
    assert cli_main(["report", "merge", measured, "--out", measured]) == 2
    assert "is one of the input files" in capsys.readouterr().err
    _strict(measured)  # untouched
    folder = tmp_path / "artifacts"
    _good(folder, contents)
    a_file = tmp_path / "a_file"
    a_file.write_text("keep")
    assert _report(folder, a_file) == 2
    assert "InputError" in capsys.readouterr().err
    assert a_file.read_text() == "keep"
    # read-only: root may write anywhere, so the denial is simulated
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(
        os, "access",
        lambda p, mode: False if str(p) == str(locked) else real_access(
            p, mode),
    )  # fmt: skip
    assert _report(folder, locked) == 2
    assert "not writable" in capsys.readouterr().err
    assert os.listdir(locked) == []  # refused before timing anything


def test_killed_report_resumes(contents, tmp_path):
    folder = tmp_path / "artifacts"
    _good(folder, contents)
    _good(folder, contents, "tiny_int8.tflite", mode="int8_io")
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "edge_backbones.cli", "report",
        "--artifacts", str(folder), "--device-name", "dev", "--out",
        str(out), "--threads", "1,2", "--runs", "20", "--warmup", "1",
    ]  # fmt: skip
    proc = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # the kill takes its workers too
    )
    result = out / "dev.json"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if result.exists() and _strict(result)["rows"]:
                break
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "finished before the kill"
    done = _strict(result)["rows"]  # the file is whole, never half-written
    assert 1 <= len(done) < 4
    proc = subprocess.run(
        [*command, "--resume"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("done in an earlier run, skipped") == len(done)
    rows = _strict(result)["rows"]
    assert rows[: len(done)] == done
    keys = {(r["mode"], r["threads"]) for r in rows}
    assert keys == {("fp32", 1), ("fp32", 2), ("int8_io", 1), ("int8_io", 2)}
    assert len(rows) == 4 and (out / "report.md").exists()
