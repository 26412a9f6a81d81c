"""The report's deployment table: where each artifact runs and what it costs.

Per artifact: the backend that ran it (XNNPACK, a GPU driver, QNN HTP
simulated, OpenVINO CPU), whether the accelerator took the whole graph, the
ops left off it by kind, and its fidelity against the float model. An
NPU-compiled artifact (`edge-backbones compile`) runs here in its vendor's
x86 simulation: its fidelity is "NPU numerics (simulated)". A QNN HTP
simulator's timing is never a device's, so it never competes for "fastest"
and is not plotted; OpenVINO's CPU device (`intel-cpu`) is timed for real.
"""

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["deployment_fields", "deployment_table", "is_simulated"]

_NPU_NUMERICS_LABEL = "NPU numerics (simulated)"
# runtime delegate / engine name -> what the table calls it
# delegate (None for a Keras row) -> what the table calls it
_BACKENDS: dict[str | None, str] = {
    "xnnpack": "XNNPACK",
    "cpu": "CPU reference kernels",
    "gpu": "GPU (LiteRT accelerator / driver)",
    "nnapi": "NNAPI",
    "edgetpu": "Edge TPU",
    "qnn-htp-simulator": "QNN HTP simulated",
    "openvino-cpu": "OpenVINO CPU",
}


def deployment_fields(metadata: Mapping[str, Any]) -> dict[str, Any] | None:
    """The `deployment` entry of a report row (None for plain artifacts)."""
    compiled = metadata.get("compiled")
    if not compiled:
        return None
    cpu_ops = compiled.get("cpu_op_kinds") or {}
    partitions = compiled.get("partitions") or []
    return {
        "soc": compiled.get("soc"),
        "accelerator": compiled.get("accelerator"),
        "ops_on_accelerator": sum(p["ops_on_npu"] for p in partitions),
        "ops_total": sum(p["ops_total"] for p in partitions),
        "partitions": sum(p["partitions"] for p in partitions),
        "cpu_op_kinds": cpu_ops,
        # a simulator's timing is not a device's (OpenVINO CPU is real)
        "simulated": compiled.get("x86_run", "simulator") == "simulator",
        "label": _NPU_NUMERICS_LABEL,
    }


def is_simulated(row: Mapping[str, Any]) -> bool:
    """True if `row` was timed in a vendor's simulation, not on a device."""
    return bool((row.get("deployment") or {}).get("simulated"))


def _offload(row):
    """(fully offloaded label, ops off the accelerator label)."""
    deployment = row.get("deployment")
    if deployment:
        kinds = deployment["cpu_op_kinds"]
        left = sum(kinds.values())
        full = left == 0 and deployment["partitions"] == 1
        ops = f"{deployment['ops_on_accelerator']}/{deployment['ops_total']}"
        return (
            f"{'yes' if full else 'no'} ({ops} ops, "
            f"{deployment['partitions']} partition(s))",
            _kinds(kinds),
        )
    full = row.get("fully_delegated")
    label = {True: "yes", False: "no", None: "n/a (no delegate)"}[full]
    return label, _kinds(row.get("cpu_ops"))


def _kinds(ops):
    if ops is None:
        return "unknown"
    if not ops:
        return "none"
    return ", ".join(f"{name} {count}" for name, count in ops.items())


def _fidelity(row):
    cosine = row.get("min_cosine")
    if cosine is None:
        return "-"
    source = (row.get("fidelity") or {}).get("label")
    return f"{cosine:.6f}" + (f" ({source})" if source else "")


def deployment_table(
    rows: Iterable[Mapping[str, Any]],
) -> tuple[list[str], list[list[str]]]:
    """(headers, body): one line per artifact (its first thread count)."""
    headers = [
        *("model", "mode", "input", "backend", "fully offloaded"),
        *("ops off the accelerator", "min cos vs float"),
    ]
    body, seen = [], set()
    for row in rows:
        artifact = (row.get("artifact") or {}).get("sha256")
        if row["kind"] != "tflite" or artifact in seen:
            continue
        seen.add(artifact)
        delegate = row.get("delegate")
        backend = _BACKENDS.get(delegate, delegate or "none")
        if is_simulated(row):
            backend += f" for {row['deployment']['soc']}"
        _, height, width, _ = row["input"]["shape"]
        full, ops_off = _offload(row)
        body.append(
            [
                row["model"]["name"],
                row["mode"],
                f"{height}x{width}",
                backend,
                full,
                ops_off,
                _fidelity(row),
            ]
        )
    return headers, body
