"""Temperature and throttling readings, and how an emulated or throttled
device run is labelled in the report."""

import platform
import stat

from edge_backbones.report import thermal
from edge_backbones.report.merge import merge_results
from edge_backbones.report.records import describe_device, load_results
from edge_backbones.report.render import render_markdown


def _zone(root, name, kind, millidegrees):
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "type").write_text(kind + "\n")
    (folder / "temp").write_text(f"{millidegrees}\n")


def test_temperatures_from_every_readable_zone(tmp_path):
    _zone(tmp_path, "thermal_zone0", "cpu-thermal", 61850)
    _zone(tmp_path, "thermal_zone1", "rp1_adc", 48312)
    (tmp_path / "thermal_zone2").mkdir()  # no temp file: skipped
    _zone(tmp_path, "cooling_device0", "fan", 1)  # not a zone
    assert thermal.read_temperatures(tmp_path) == {
        "cpu-thermal": 61.85,
        "rp1_adc": 48.312,
    }
    assert thermal.read_temperatures(tmp_path / "missing") == {}


def test_get_throttled_bits():
    # a Pi that is throttled and soft-limited now and was under-volted
    reading = thermal.parse_throttled("throttled=0x1000c\n")
    assert reading == {
        "raw": "0x1000c",
        "now": ["throttled", "soft temperature limit"],
        "since_boot": ["under-voltage"],
    }
    assert thermal.parse_throttled("throttled=0x0")["now"] == []
    assert thermal.parse_throttled("error=1 error_msg=...") is None
    assert thermal.parse_throttled("throttled=zz") is None


def test_snapshot_runs_vcgencmd_when_present(tmp_path):
    fake = tmp_path / "vcgencmd"
    fake.write_text(
        '#!/bin/sh\n[ "$1" = get_throttled ] && echo throttled=0x4\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    _zone(tmp_path / "sys", "thermal_zone0", "cpu-thermal", 80100)
    reading = thermal.snapshot(tmp_path / "sys", str(fake))
    assert reading == {
        "temperatures_c": {"cpu-thermal": 80.1},
        "throttled": {"raw": "0x4", "now": ["throttled"], "since_boot": []},
    }
    missing = thermal.snapshot(tmp_path / "sys", str(tmp_path / "none"))
    assert missing["throttled"] is None


def test_device_block_says_when_emulated(monkeypatch):
    monkeypatch.setenv("EDGE_BACKBONES_EMULATED", "qemu-user cortex-a72")
    assert describe_device("pi4")["emulated"] == "qemu-user cortex-a72"
    monkeypatch.delenv("EDGE_BACKBONES_EMULATED")
    assert describe_device("laptop")["emulated"] is None


def test_report_labels_emulated_latency_and_throttled_rows(device_results):
    laptop, pi = (load_results(path) for path in device_results)
    pi["device"]["emulated"] = "qemu-user cortex-a76"
    pi["rows"][0]["thermal"] = {
        "temperatures_c": {"cpu-thermal": 84.5},
        "throttled": thermal.parse_throttled("throttled=0x4"),
    }
    markdown = render_markdown(merge_results([laptop, pi]))
    laptop_part, pi_part = markdown.split("## Device: pi")
    assert "(emulated, not Pi speed)" not in laptop_part
    assert "| median ms (emulated, not Pi speed) |" in pi_part
    assert "Emulated (qemu-user cortex-a76)" in pi_part
    row = pi["rows"][0]
    assert (
        f"Throttled while timed: {row['model']['name']} {row['mode']} "
        f"threads {row['threads']} (throttled)."
    ) in pi_part
    assert "CPU temperature up to 84.5 C." in pi_part
    # the artifacts were verified here, and the fidelity table says so
    verified = row["fidelity"]["verified_on"]
    assert verified["arch"] == platform.machine()
    assert f"| {platform.machine()} {verified['runtime']} xnnpack |" in (
        pi_part
    )
