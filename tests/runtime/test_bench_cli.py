import argparse
import json
import os

import cv2
import numpy as np
import pytest

from edge_backbones.errors import InputError, ModelFileError
from edge_backbones.runtime import DelegateFallbackWarning, cli
from edge_backbones.runtime.bench import benchmark, format_table
from edge_backbones.runtime.macs import count_macs


def _run_cli(argv):
    parser = argparse.ArgumentParser()
    cli.add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_benchmark_reports_the_contract_keys(tiny):
    path = tiny["paths"]["int8"]
    result = benchmark(path, num_threads=1, runs=20, warmup=2,
                       compare_bare=True)  # fmt: skip
    assert result["size_bytes"] == os.path.getsize(path)
    assert result["threads"] == 1
    assert result["delegate"] == "xnnpack"
    assert result["fully_delegated"] is True
    assert result["backend"].startswith("litert ")
    lat = result["latency_ms"]
    assert lat["runs"] == 20
    assert 0 < lat["min"] <= lat["p5"] <= lat["median"] <= lat["p95"]
    assert lat["p95"] <= lat["max"]
    assert result["init_ms"] > 0 and result["peak_rss_mb"] > 10
    assert result["bare_latency_ms"]["runs"] == 20
    assert result["wrapper_over_bare"] == pytest.approx(
        lat["median"] / result["bare_latency_ms"]["median"]
    )
    silicon = result["silicon"]
    assert silicon["macs"] == count_macs(path)["total"] > 0
    assert silicon["gmac_per_s"] == pytest.approx(
        silicon["macs"] / (lat["median"] / 1e3) / 1e9
    )
    assert silicon["cores"] == 1
    if silicon["fp32_peak_gmac_per_s"] is not None:  # x86: a known clock
        assert silicon["fp32_peak_share"] == pytest.approx(
            silicon["gmac_per_s"] / silicon["fp32_peak_gmac_per_s"]
        )
    table = format_table([result])
    assert "wrap/bare" in table and "int8.tflite" in table
    assert "GMAC/s" in table


def test_cli_run_prints_levels_and_saves_a_heatmap(tiny, tmp_path, capsys):
    image = tmp_path / "photo.jpg"
    rng = np.random.default_rng(0)
    cv2.imwrite(str(image), rng.integers(0, 256, (48, 64, 3), np.uint8))
    png = tmp_path / "levels.png"
    code = _run_cli(["run", str(tiny["paths"]["f32_meta"]), str(image),
                     "--save-png", str(png)])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "runs on   xnnpack" in out
    assert "P1  [1, 16, 16, 8]" in out and "P2  [1, 8, 8, 16]" in out
    picture = cv2.imread(str(png))
    # input panel (48x64 -> 256x341) + two square level panels + 2 gaps
    assert picture.shape == (256, 341 + 4 + 256 + 4 + 256, 3)


def test_cli_bench_writes_json_per_thread_count(tiny, tmp_path, capsys):
    out = tmp_path / "bench.json"
    model = str(tiny["paths"]["f32"])
    code = _run_cli(["bench", model, "--threads", "1,2", "--runs", "5",
                     "--warmup", "1", "--json", str(out)])  # fmt: skip
    assert code == 0
    document = json.loads(out.read_text())
    assert [r["threads"] for r in document["results"]] == [1, 2]
    assert all(r["latency_ms"]["runs"] == 5 for r in document["results"])
    # the CPU the peaks come from, flags included
    cpu = document["host"]["cpu"]
    assert set(cpu) >= {"flags", "flags_emulated", "mhz", "peak"}
    assert [r["silicon"]["cores"] for r in document["results"]] == [1, 2]
    assert "median" in capsys.readouterr().out


def test_cli_model_options_reach_the_model(tiny, tmp_path, capsys):
    from edge_backbones.errors import DelegateUnavailableError

    model = str(tiny["paths"]["f32"])
    out = tmp_path / "bench.json"
    argv = ["bench", model, "--runs", "2", "--warmup", "0"]
    assert _run_cli([*argv, "--delegates", "cpu", "--json", str(out)]) == 0
    (result,) = json.loads(out.read_text())["results"]
    assert result["delegate"] == "cpu"  # reference kernels, not XNNPACK
    missing = str(tmp_path / "no_delegate.so")
    image = tmp_path / "photo.png"
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    run = ["run", str(tiny["paths"]["f32_meta"]), str(image)]
    with pytest.raises(DelegateUnavailableError, match="no_delegate.so"):
        _run_cli([*run, "--delegates", missing, "--strict"])
    capsys.readouterr()
    with pytest.warns(DelegateFallbackWarning):
        assert _run_cli([*run, "--delegates", missing]) == 0
    assert "runs on   xnnpack" in capsys.readouterr().out


def test_cli_errors_are_typed(tmp_path):
    with pytest.raises(ModelFileError):
        _run_cli(["run", str(tmp_path / "none.tflite"), "x.jpg"])
    with pytest.raises(SystemExit):
        _run_cli(["bench", "m.tflite", "--threads", "0"])


class _DiskFillsMidWrite:
    """A file object whose first write stores half the data, then fails as
    a full disk does."""

    def __init__(self, file):
        self._file = file

    def write(self, data):
        self._file.write(data[: len(data) // 2])
        self._file.flush()
        raise OSError(28, "No space left on device")

    def __getattr__(self, name):
        return getattr(self._file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._file.__exit__(*exc)


def _fill_disk_mid_write(monkeypatch):
    """Every file opened for writing (by open or os.fdopen) fails half way
    through its first write."""
    import builtins

    real_open, real_fdopen = builtins.open, os.fdopen

    def writing(mode):
        return any(flag in mode for flag in "wax+")

    def fake_open(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        return _DiskFillsMidWrite(f) if writing(mode) else f

    def fake_fdopen(fd, mode="r", *args, **kwargs):
        f = real_fdopen(fd, mode, *args, **kwargs)
        return _DiskFillsMidWrite(f) if writing(mode) else f

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(os, "fdopen", fake_fdopen)


def test_cli_bench_json_is_replaced_whole_or_not_at_all(
    tiny, tmp_path, monkeypatch
):
    out = tmp_path / "bench.json"
    out.write_text('{"results": ["an earlier run"]}')
    model = str(tiny["paths"]["f32"])
    monkeypatch.setattr(
        "edge_backbones.runtime.bench.benchmark",
        lambda *args, **kwargs: {"latency_ms": {"median": 1.0}},
    )
    monkeypatch.setattr(
        "edge_backbones.runtime.bench.format_table", lambda results: ""
    )
    # the disk fills while the new JSON is being written
    _fill_disk_mid_write(monkeypatch)
    with pytest.raises(InputError, match="No space left on device"):
        _run_cli(["bench", model, "--json", str(out)])
    monkeypatch.undo()
    assert json.loads(out.read_text()) == {"results": ["an earlier run"]}
    assert os.listdir(tmp_path) == ["bench.json"]


def test_cli_run_png_is_replaced_whole_or_not_at_all(
    tiny, tmp_path, monkeypatch
):
    image = tmp_path / "photo.png"
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    png = tmp_path / "levels.png"
    png.write_bytes(b"an earlier picture")

    def failing_replace(src, dst):
        raise OSError("no space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(InputError, match="Cannot write the PNG"):
        _run_cli(["run", str(tiny["paths"]["f32_meta"]), str(image),
                  "--save-png", str(png)])  # fmt: skip
    assert png.read_bytes() == b"an earlier picture"
