"""This machine's /proc/cpuinfo: the one reader for the parity records,
the report's device block, the benchmarks' CPU record and the export's
`cpu` recipe choice.

`EDGE_BACKBONES_CPU_FLAGS` (flags separated by spaces or commas) stands
in for the CPU's own flags wherever they are read without a path: it
emulates another CPU (say, an AVX2-only one on an AVX-512 VNNI machine)
for the `cpu` target's choice and the peak model. Every record that
carries flags says whether they were emulated.
"""

import os
import platform
from typing import Any

from edge_backbones.core.peak import cpu_frequency_mhz, peak_model

__all__ = [
    "CPU_FLAGS_ENV",
    "read_cpuinfo",
    "cpu_flags",
    "cpu_flags_override",
    "cpu_record",
    "peak_cpuinfo",
]

CPU_FLAGS_ENV = "EDGE_BACKBONES_CPU_FLAGS"


def read_cpuinfo(path: str = "/proc/cpuinfo") -> dict[str, str] | None:
    """{lower-case key: its first value}, or None without the file.

    The first processor speaks for all (their flags agree on the machines
    we target); None where there is no /proc (macOS, Windows).
    """
    fields: dict[str, str] = {}
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip().lower(), value.strip())
    except OSError:
        return None
    return fields


def cpu_flags_override() -> set[str] | None:
    """The flags `EDGE_BACKBONES_CPU_FLAGS` sets, or None where unset."""
    text = os.environ.get(CPU_FLAGS_ENV)
    if text is None:
        return None
    return set(text.replace(",", " ").split())


def cpu_flags(path: str | os.PathLike[str] | None = None) -> set[str] | None:
    """The CPU's feature flags (x86 `flags`, Arm `Features`), or None.

    Without `path`: `EDGE_BACKBONES_CPU_FLAGS` where set, else
    /proc/cpuinfo's.
    """
    if path is None:
        override = cpu_flags_override()
        if override is not None:
            return override
        path = "/proc/cpuinfo"
    fields = read_cpuinfo(os.fspath(path))
    if fields is None:
        return None
    return set((fields.get("flags") or fields.get("features") or "").split())


def peak_cpuinfo(info: dict[str, str] | None) -> dict[str, str] | None:
    """What `peak.peak_model` may read of this CPU's /proc/cpuinfo: none
    of it while `EDGE_BACKBONES_CPU_FLAGS` emulates another CPU (this
    one's family must not derate the emulated one's vector unit)."""
    return None if cpu_flags_override() is not None else info


def cpu_record() -> dict[str, Any]:
    """This CPU for a benchmark's JSON: model, flags (and whether they are
    emulated), clock, the peak model (`core.peak`), load average."""
    info = read_cpuinfo() or {}
    flags = cpu_flags()
    peak = peak_model(flags or (), peak_cpuinfo(info))
    mhz, source = cpu_frequency_mhz(info)
    try:
        load: list[float] | None = list(os.getloadavg())
    except OSError:  # Windows
        load = None
    return {
        "model": info.get("model name") or platform.processor() or "unknown",
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "flags": sorted(flags or ()),
        "flags_emulated": cpu_flags_override() is not None,
        "mhz": mhz,
        "mhz_source": source,
        "peak": {
            "isa": peak.isa,
            "fp32_macs_per_cycle": peak.fp32_macs_per_cycle,
            "int8_macs_per_cycle": peak.int8_macs_per_cycle,
            "basis": peak.basis,
        },
        "load_average": load,
    }
