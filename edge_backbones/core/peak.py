"""How many multiply-adds a CPU core can do per second: the physical limit
a benchmark's GMAC/s is read against.

The model is the vector unit's width, read from the CPU's feature flags
(`cpuinfo.cpu_flags`), times the clock (`cpuinfo.read_cpuinfo`'s MHz):

- fp32: two FMA pipes of the widest float vector: AVX2+FMA 2x8,
  AVX-512 2x16, Arm NEON 2x4 multiply-adds per cycle.
- int8: x86 AVX-512 VNNI / AVX-VNNI (`vpdpbusd`) and Arm `sdot` do four
  times as many int8 multiply-adds per instruction as fp32 FMAs; without
  them `vpmaddubsw` + `vpaddd` (x86) or `smlal` (Arm) reach about twice
  fp32; Arm `smmla` (i8mm) doubles `sdot` again; an AMX tile unit does
  1024 int8 multiply-adds per cycle.
- AMD Zen 1 and Zen+ (family 23, model below 0x30) split each 256-bit
  AVX operation into two 128-bit halves: half the AVX2 figures.

The clock is the one /proc/cpuinfo reports (the current frequency of the
first core, which may differ from the boost clock a busy core reaches);
the result says which clock it used. Pure Python: the report reads it on
a device without numpy.
"""

import dataclasses
from collections.abc import Iterable, Mapping
from typing import TypedDict

__all__ = [
    "PeakModel",
    "SiliconShare",
    "peak_model",
    "cpu_frequency_mhz",
    "silicon_share",
]

_AMX_INT8_MACS_PER_CYCLE = 1024


@dataclasses.dataclass(frozen=True)
class PeakModel:
    """One core's multiply-adds per cycle, and why."""

    isa: str  # the vector unit the figures come from, e.g. "avx2+fma"
    fp32_macs_per_cycle: int
    int8_macs_per_cycle: int
    int8_instruction: str  # what does the int8 multiply-adds
    basis: str  # one sentence: how the figures follow from the flags


def _zen1(cpuinfo: Mapping[str, str] | None) -> bool:
    if not cpuinfo or "amd" not in cpuinfo.get("vendor_id", "").lower():
        return False
    try:
        family = int(cpuinfo.get("cpu family", ""))
        model = int(cpuinfo.get("model", ""))
    except ValueError:
        return False
    return family == 23 and model < 0x30


def peak_model(
    flags: Iterable[str], cpuinfo: Mapping[str, str] | None = None
) -> PeakModel:
    """The peak model of a core with `flags` (/proc/cpuinfo `flags` on
    x86, `Features` on Arm); `cpuinfo` (`read_cpuinfo`'s fields) names
    the vendor and family where the flags alone mislead (Zen 1)."""
    have = set(flags)
    if "avx512f" in have:
        fp32, isa = 32, "avx512"
        vnni = "avx512_vnni" in have
        why = "2 FMA pipes x 16 fp32"
    elif "avx2" in have and "fma" in have:
        fp32, isa = 16, "avx2+fma"
        vnni = "avx_vnni" in have
        why = "2 FMA pipes x 8 fp32"
        if _zen1(cpuinfo):
            fp32, isa = 8, "avx2+fma (Zen 1: 128-bit pipes)"
            why = "2 FMA pipes x 4 fp32 (Zen 1 splits 256-bit ops)"
    elif "asimd" in have:
        fp32, isa = 8, "neon"
        vnni = "asimddp" in have
        why = "2 FMA pipes x 4 fp32"
    elif "avx" in have or "sse2" in have:
        fp32, isa = 8, "avx" if "avx" in have else "sse2"
        vnni = False
        why = "no FMA: 1 multiply + 1 add pipe x 8 fp32 (4 with SSE2)"
        if isa == "sse2":
            fp32 = 4
    else:
        return PeakModel("unknown", 1, 1, "scalar", "no vector flags known")
    if "amx_int8" in have:
        int8, how = _AMX_INT8_MACS_PER_CYCLE, "AMX tiles (1024/cycle)"
    elif isa == "neon" and "i8mm" in have:
        int8, how = 8 * fp32, "smmla (i8mm: 8x fp32)"
    elif vnni:
        name = "sdot" if isa == "neon" else "vpdpbusd (VNNI)"
        int8, how = 4 * fp32, f"{name}: 4x fp32"
    else:
        name = "smlal" if isa == "neon" else "vpmaddubsw+vpaddd"
        int8, how = 2 * fp32, f"{name}: ~2x fp32"
    return PeakModel(
        isa=isa,
        fp32_macs_per_cycle=fp32,
        int8_macs_per_cycle=int8,
        int8_instruction=how,
        basis=f"fp32: {why} per cycle; int8: {how}",
    )


def cpu_frequency_mhz(
    cpuinfo: Mapping[str, str] | None,
) -> tuple[float | None, str]:
    """(MHz, where it came from): /proc/cpuinfo's `cpu MHz` (x86; the
    first core's current clock), else None with the reason."""
    if not cpuinfo:
        return None, "unknown: no /proc/cpuinfo"
    text = cpuinfo.get("cpu mhz")
    try:
        mhz = float(text) if text else None
    except ValueError:
        mhz = None
    if mhz is None or mhz <= 0:
        return None, "unknown: /proc/cpuinfo has no 'cpu MHz' (Arm)"
    return mhz, "/proc/cpuinfo 'cpu MHz' (current clock of core 0)"


class SiliconShare(TypedDict):
    """One measurement against the peak: what `silicon_share` returns."""

    macs: int
    gmac_per_s: float
    cores: int
    fp32_peak_gmac_per_s: float | None
    int8_peak_gmac_per_s: float | None
    fp32_peak_share: float | None
    int8_peak_share: float | None


def silicon_share(
    macs: int,
    seconds: float,
    cores: int,
    peak: PeakModel,
    mhz: float | None,
) -> SiliconShare:
    """GMAC/s of `macs` done in `seconds` on `cores` cores, and its share
    of the fp32 and int8 peaks (None where the clock is unknown)."""
    gmacs = macs / seconds / 1e9 if seconds > 0 else 0.0
    fp32 = int8 = None
    if mhz:
        fp32 = peak.fp32_macs_per_cycle * mhz * 1e6 * cores / 1e9
        int8 = peak.int8_macs_per_cycle * mhz * 1e6 * cores / 1e9
    return {
        "macs": macs,
        "gmac_per_s": gmacs,
        "cores": cores,
        "fp32_peak_gmac_per_s": fp32,
        "int8_peak_gmac_per_s": int8,
        "fp32_peak_share": gmacs / fp32 if fp32 else None,
        "int8_peak_share": gmacs / int8 if int8 else None,
    }
