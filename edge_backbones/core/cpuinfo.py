"""This machine's /proc/cpuinfo: the one reader for the parity records,
the report's device block and the export's `cpu` recipe choice."""

__all__ = ["read_cpuinfo", "cpu_flags"]


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


def cpu_flags(path: str = "/proc/cpuinfo") -> set[str] | None:
    """The CPU's feature flags (x86 `flags`, Arm `Features`), or None."""
    fields = read_cpuinfo(path)
    if fields is None:
        return None
    return set((fields.get("flags") or fields.get("features") or "").split())
