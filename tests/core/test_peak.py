"""The CPU peak model: multiply-adds per cycle from the flags, the clock
from /proc/cpuinfo, and a measurement's share of the peak."""

import pytest

from edge_backbones.core import cpuinfo
from edge_backbones.core.peak import (
    cpu_frequency_mhz,
    peak_model,
    silicon_share,
)

ZEN1 = {"vendor_id": "AuthenticAMD", "cpu family": "23", "model": "1"}
ZEN5 = {"vendor_id": "AuthenticAMD", "cpu family": "26", "model": "2"}


@pytest.mark.parametrize(
    "flags, info, fp32, int8",
    [
        ({"avx", "avx2", "fma", "f16c"}, ZEN5, 16, 32),  # AVX2 only
        ({"avx", "avx2", "fma", "f16c"}, ZEN1, 8, 16),  # 128-bit pipes
        ({"avx2", "fma", "avx_vnni"}, None, 16, 64),  # Alder Lake
        ({"avx2", "fma", "avx512f", "avx512bw"}, None, 32, 64),  # Skylake-X
        ({"avx2", "fma", "avx512f", "avx512_vnni"}, ZEN5, 32, 128),
        ({"avx2", "fma", "avx512f", "avx512_vnni", "amx_int8"}, None, 32, 1024),
        ({"fp", "asimd"}, None, 8, 16),  # Cortex-A72
        ({"fp", "asimd", "asimddp"}, None, 8, 32),  # Cortex-A76
        ({"fp", "asimd", "asimddp", "i8mm"}, None, 8, 64),  # Cortex-A710
        ({"fpu"}, None, 1, 1),
    ],
)
def test_peak_follows_the_vector_unit(flags, info, fp32, int8):
    peak = peak_model(flags, info)
    assert (peak.fp32_macs_per_cycle, peak.int8_macs_per_cycle) == (fp32, int8)
    assert peak.basis


def test_clock_comes_from_cpuinfo_and_says_so():
    assert cpu_frequency_mhz({"cpu mhz": "1996.249"}) == (
        pytest.approx(1996.249),
        "/proc/cpuinfo 'cpu MHz' (current clock of core 0)",
    )
    assert cpu_frequency_mhz({"features": "fp asimd"})[0] is None
    assert cpu_frequency_mhz(None)[0] is None


def test_share_of_the_peak():
    peak = peak_model({"avx2", "fma"}, ZEN5)  # 16 fp32, 32 int8 per cycle
    # 2 cores at 2 GHz: 64 fp32 GMAC/s; 3.2 GMAC in 0.1 s is 32 GMAC/s
    share = silicon_share(3_200_000_000, 0.1, 2, peak, 2000.0)
    assert share["gmac_per_s"] == pytest.approx(32.0)
    assert share["fp32_peak_gmac_per_s"] == pytest.approx(64.0)
    assert share["fp32_peak_share"] == pytest.approx(0.5)
    assert share["int8_peak_share"] == pytest.approx(0.25)
    unknown = silicon_share(10, 1.0, 1, peak, None)
    assert unknown["fp32_peak_share"] is None


def test_flags_override_emulates_another_cpu(monkeypatch, tmp_path):
    monkeypatch.setenv(cpuinfo.CPU_FLAGS_ENV, "avx2, fma avx512_vnni")
    assert cpuinfo.cpu_flags() == {"avx2", "fma", "avx512_vnni"}
    record = cpuinfo.cpu_record()
    assert record["flags_emulated"] is True
    assert record["flags"] == ["avx2", "avx512_vnni", "fma"]
    # a file read by path is that file's, override or not
    x86 = tmp_path / "cpuinfo"
    x86.write_text("processor\t: 0\nflags\t\t: fpu avx2\n")
    assert cpuinfo.cpu_flags(x86) == {"fpu", "avx2"}
    monkeypatch.delenv(cpuinfo.CPU_FLAGS_ENV)
    assert cpuinfo.cpu_record()["flags_emulated"] is False
