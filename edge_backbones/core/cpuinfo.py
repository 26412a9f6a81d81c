"""This machine's /proc/cpuinfo: the one reader for the parity records,
the report's device block and the export's `cpu` recipe choice."""

__all__ = ["read_cpuinfo", "cpu_flags"]


def read_cpuinfo(path="/proc/cpuinfo"):
    """{lower-case key: its first value}, or None without the file.

    The first processor speaks for all (their flags agree on the machines
    we target); None where there is no /proc (macOS, Windows).
    """
    fields = {}
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip().lower(), value.strip())
    except OSError:
        return None
    return fields


def cpu_flags(path="/proc/cpuinfo"):
    """The CPU's feature flags (x86 `flags`, Arm `Features`), or None."""
    fields = read_cpuinfo(path)
    if fields is None:
        return None
    return set((fields.get("flags") or fields.get("features") or "").split())
