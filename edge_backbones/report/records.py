"""The report's result file: one JSON per device, rows added as they finish.

A result file holds who measured (device, CPU, OS, versions), how (each run's
id, command, settings) and what (one row per model x mode x thread count).
Every row names the run that produced it, so no number is shown without its
run. The file is rewritten atomically after each row: a report stopped
halfway keeps what it finished, and `--resume` skips those rows.
"""

import importlib.metadata
import json
import os
import platform
import uuid
from collections.abc import Mapping
from typing import Any

from edge_backbones.atomic_io import write_json_atomic
from edge_backbones.core.cpuinfo import read_cpuinfo
from edge_backbones.errors import MetadataError
from edge_backbones.runtime.metadata import utc_now

__all__ = [
    "SCHEMA",
    "ResultFile",
    "check_row",
    "describe_device",
    "finite_fidelity",
    "load_results",
    "new_run",
    "row_key",
    "write_json_atomic",
]

SCHEMA = "edge_backbones.report/1"
# distributions whose versions shape the numbers; looked up, never imported,
# so describing the device never pulls TensorFlow into a runtime-only run
_VERSIONED = (
    "edge-backbones",
    "ai-edge-litert",
    "tflite-runtime",
    "numpy",
    "opencv-python-headless",
    "tensorflow",
    "keras",
)


def finite_fidelity(fidelity: Any) -> Any:
    """`fidelity` with an infinite SQNR as `sqnr_db: null, exact: true`.

    Artifacts and result files written before JSON was strict hold
    `Infinity` for an exact match; rewriting it would be invalid JSON.
    """
    if not fidelity or not isinstance(fidelity.get("levels"), dict):
        return fidelity
    levels = {}
    for name, level in fidelity["levels"].items():
        sqnr = level.get("sqnr_db") if isinstance(level, dict) else None
        if isinstance(sqnr, float) and sqnr == float("inf"):
            level = {**level, "sqnr_db": None, "exact": True}
        levels[name] = level
    return {**fidelity, "levels": levels}


def _cpu_info():
    """CPU model, board, logical cores and feature flags (/proc/cpuinfo)."""
    fields = read_cpuinfo() or {}
    # x86 names the CPU in "model name" ("model" is a number there); Arm
    # boards name the board in "Model" and the SoC in "Hardware"
    board = fields.get("model", "")
    return {
        "model": fields.get("model name")
        or fields.get("hardware")
        or platform.processor()
        or platform.machine(),
        "board": None if board.isdigit() else board or None,
        "logical_cores": os.cpu_count(),
        "flags": (fields.get("flags") or fields.get("features") or "").split(),
    }


def _versions():
    versions = {}
    for dist in _VERSIONED:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def describe_device(name: str) -> dict[str, Any]:
    """Who measures: the device name given by the user, CPU, OS, versions.

    `emulated` names the emulator when the run is not on real hardware
    (EDGE_BACKBONES_EMULATED, which benchmarks/pi/rootfs.sh sets to e.g.
    "qemu-user cortex-a72"): its latencies are then no device's speed.
    `thermal` is the temperature/throttling reading at the start.
    """
    from edge_backbones.report.thermal import snapshot

    return {
        "name": name,
        "emulated": os.environ.get("EDGE_BACKBONES_EMULATED") or None,
        "thermal": snapshot(),
        "cpu": _cpu_info(),
        "os": {
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
            "platform": platform.platform(),
        },
        "python": platform.python_version(),
        "versions": _versions(),
    }


def new_run(command: str | None, settings: Mapping[str, Any]) -> dict[str, Any]:
    """A run record: its id, start time, the command line and settings."""
    return {
        "run_id": uuid.uuid4().hex[:12],
        "started": utc_now(),
        "command": command,
        "settings": settings,
    }


def row_key(row: Mapping[str, Any]) -> tuple[Any, ...]:
    """What makes two rows the same measurement (for `--resume`)."""
    artifact = row.get("artifact") or {}
    return (
        row["kind"],
        row["model"]["name"],
        row["mode"],
        tuple(row["input"]["shape"]),
        artifact.get("sha256"),
        row["threads"],
    )


def load_results(path: str) -> dict[str, Any]:
    """Reads and checks one result file; a MetadataError says what is wrong.

    Raises:
        MetadataError: a missing, malformed or other-schema result file.
    """
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError as exc:
        raise MetadataError(
            f"No report result file at {str(path)!r}. Produce one with "
            "`edge-backbones report --device-name NAME --out DIR`."
        ) from exc
    except (OSError, ValueError) as exc:  # JSONDecodeError, UTF-8 errors
        raise MetadataError(
            f"{str(path)!r} is not readable JSON ({exc}). Run the report "
            "again, or pass a file it wrote."
        ) from exc
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        got = data.get("schema") if isinstance(data, dict) else type(data)
        raise MetadataError(
            f"{str(path)!r} is not a report result file (schema {got!r}, "
            f"expected {SCHEMA!r}). Pass the <device>.json written by "
            "`edge-backbones report`."
        )
    for field in ("device", "runs", "rows"):
        if field not in data:
            raise MetadataError(
                f"{str(path)!r} has no {field!r}; it was cut or edited. Run "
                "the report again."
            )
    if not isinstance(data["rows"], list):
        raise MetadataError(
            f"{str(path)!r}: 'rows' is a {type(data['rows']).__name__}, not "
            "a list; it was edited. Run the report again."
        )
    for index, row in enumerate(data["rows"]):
        check_row(path, index, row)
    data["rows"] = [
        {**row, "fidelity": finite_fidelity(row.get("fidelity"))}
        for row in data["rows"]
    ]
    return data


# row field -> the keys it must hold (None: any value)
_ROW_FIELDS = {
    "run_id": None,
    "kind": None,
    "mode": None,
    "threads": None,
    "model": ("name",),
    "input": ("shape",),
    "latency_ms": ("median", "p5", "p95", "mean", "std", "runs"),
}


def check_row(path: str, index: int, row: Mapping[str, Any]) -> None:
    """A MetadataError naming the row and the missing field, if any.

    Raises:
        MetadataError: the row lacks a field a report needs.
    """
    problem = None
    if not isinstance(row, dict):
        problem = f"is a {type(row).__name__}, not an object"
    else:
        for field, keys in _ROW_FIELDS.items():
            value = row.get(field)
            if value is None:
                problem = f"has no {field!r}"
            elif keys and (
                not isinstance(value, dict) or any(k not in value for k in keys)
            ):
                problem = f"has a {field!r} without all of {list(keys)}"
            if problem:
                break
    if problem:
        raise MetadataError(
            f"{str(path)!r}: row {index} {problem}; the file was cut or "
            "edited by hand. Delete that row (or the file) and run "
            "`edge-backbones report ... --resume` to time it again."
        )


class ResultFile:
    """One device's result file, rewritten after every added row."""

    def __init__(
        self,
        path: str,
        device: dict[str, Any],
        run: dict[str, Any],
        resume: bool = False,
    ) -> None:
        self.path = path
        self.run = run
        self.data: dict[str, Any] = {
            "schema": SCHEMA,
            "device": device,
            "runs": [],
            "rows": [],
        }
        if resume and os.path.exists(path):
            previous = load_results(path)
            if previous["device"]["name"] != device["name"]:
                raise MetadataError(
                    f"--resume: {str(path)!r} holds device "
                    f"{previous['device']['name']!r}, not {device['name']!r}."
                    " Pass the same --device-name, or another --out."
                )
            self.data["runs"] = previous["runs"]
            self.data["rows"] = previous["rows"]
        self.data["runs"].append(run)
        self._done = {row_key(row) for row in self.data["rows"]}
        self.save()

    def has(self, row: Mapping[str, Any]) -> bool:
        """True if a row with `row`'s key is in the file already."""
        return row_key(row) in self._done

    def add(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Adds a measured row (stamped with the run and time); returns it."""
        row = {"run_id": self.run["run_id"], "measured": utc_now(), **row}
        self.data["rows"].append(row)
        self._done.add(row_key(row))
        self.save()
        return row

    def fail(
        self, what: str, reason: str, key: tuple[Any, ...] | None = None
    ) -> None:
        """Records in this run that `what` (an artifact or row label) failed
        and why; `key` (a row key) lets a later --resume run that times
        the row hide the failure."""
        self.run.setdefault("failures", []).append(
            {
                "what": what,
                "reason": reason,
                "key": None if key is None else list(key),
            }
        )
        self.save()

    def finish(self) -> None:
        """Stamps the run's end and writes the file."""
        self.run["finished"] = utc_now()
        self.save()

    def save(self) -> None:
        """Writes the file (atomically)."""
        write_json_atomic(self.path, self.data)
