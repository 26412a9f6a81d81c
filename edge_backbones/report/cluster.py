"""`report --recipe R --cluster ADDRESS`: the report's exports and timing
rows as Ray tasks (`pip install "edge-backbones[cluster]"`).

Ray is imported here only, and only when `--cluster` is given: a runtime-
only device (numpy + OpenCV + LiteRT) never needs it.

- Exports: one task per model of the recipe, asking for the memory of
  the export's largest phase (`exporter.memory.phase_bytes`, computed by
  a small task on the cluster first) and the cores it verifies with, so
  the scheduler never packs two large exports onto one node; the export
  keeps within that reservation (`EDGE_BACKBONES_MAX_MEMORY_GIB`),
  splitting itself into child conversions where it must. A task
  runs the export into a folder of its node and returns the files; the
  driver writes each artifact and its sidecar into `--out` as a local
  export does (`core.workspace.write_pair`: both or neither). A task's
  worker process ends after its export (`max_calls=1`): TensorFlow keeps
  what it allocated until its process exits.
- Timing rows: each `[[device]]` of the recipe (or, without one, this
  machine under `--device-name`) takes its rows on the node started with
  the Ray resource `device:<name>` (`ray start ... --resources
  '{"device:pi5": 1}'`), one row at a time. The node describes itself
  (CPU, OS, versions) in its result file `<out>/<name>.json`, which the
  driver writes row by row as a serial report does (`records.ResultFile`,
  so `--resume` skips the rows already there).
- Faults: a worker or node that dies mid-row is retried (`max_retries`);
  the driver adds a row once, when its task returns. A device with no node
  is shown as waiting and, after `device_timeout` seconds, fails with a
  ClusterError naming the `ray start` line that provides it, once the
  other devices are done. Ctrl-C cancels the tasks; the result files stay
  valid and `--resume` continues.
"""

import contextlib
import dataclasses
import os
import signal
import socket
import sys
import tempfile
import time
from typing import Any

from edge_backbones.errors import (
    ClusterError,
    EdgeBackbonesError,
    FidelityError,
    ReportError,
    require,
)
from edge_backbones.report import collect
from edge_backbones.report.recipe import Device, load_devices
from edge_backbones.report.records import (
    ResultFile,
    describe_device,
    new_run,
    row_key,
)

__all__ = [
    "DEVICE_TIMEOUT_S",
    "KILL_ROW_ONCE_ENV",
    "MAX_RETRIES",
    "collect_recipe",
    "connect",
    "device_resource",
]

DEVICE_TIMEOUT_S = 600.0
MAX_RETRIES = 3
# tests kill the worker running the first row started while this file is
# missing (and create it): one worker death, deterministically
KILL_ROW_ONCE_ENV = "EDGE_BACKBONES_TEST_KILL_ROW_ONCE"
_CONNECT_TIMEOUT_S = 5.0
_POLL_S = 0.5


def _log(message):
    print(f"report: {message}", file=sys.stderr, flush=True)


def device_resource(name: str) -> str:
    """The Ray resource a node offers to take `name`'s timing rows."""
    return f"device:{name}"


def _start_head_hint(address):
    return (
        f"Start a head there with `ray start --head --port "
        f"{_port(address) or 6379}` (and on each device `ray start "
        "--address HEAD:PORT --resources '{\"device:NAME\": 1}'`), or use "
        "--cluster local for a private cluster on this machine."
    )


def _port(address):
    tail = address.rsplit(":", 1)
    return tail[1] if len(tail) == 2 and tail[1].isdigit() else None


def _check_reachable(address):
    """ClusterError in seconds if nothing listens at host:port."""
    host_port = address.split("://", 1)[-1]
    host, port = host_port.rsplit(":", 1) if ":" in host_port else ("", "")
    if not port.isdigit():
        raise ClusterError(
            f"--cluster {address!r} is not an address: give auto, local, "
            "HOST:PORT or ray://HOST:PORT (e.g. ray://192.168.1.10:10001)."
        )
    try:
        socket.create_connection((host, int(port)), _CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise ClusterError(
            f"No Ray cluster answers at {address!r} ({exc.strerror or exc}"
            f", after {_CONNECT_TIMEOUT_S:.0f} s). " + _start_head_hint(address)
        ) from exc


def _is_loopback(address: str) -> bool:
    host = address.split("://", 1)[-1].rsplit(":", 1)[0]
    return host in ("localhost", "::1") or host.startswith("127.")


def connect(address: str, device_name: str | None = None) -> Any:
    """Joins (or, for "local", starts) the Ray cluster; returns `ray`.

    "local" starts a private instance on 127.0.0.1 whose one node takes
    the rows of `device_name`; "auto" joins the cluster `ray start` runs
    on this machine; HOST:PORT or ray://HOST:PORT joins a remote head (the
    address is probed first, so a wrong one fails in seconds).
    """
    ray = require("ray", "cluster")
    kwargs = {"logging_level": "ERROR", "log_to_driver": False}
    if address == "local":
        resources = {device_resource(device_name): 1} if device_name else {}
        kwargs.update(
            address="local",
            include_dashboard=False,
            resources=resources,
            _node_ip_address="127.0.0.1",
        )
    elif address == "auto":
        kwargs["address"] = "auto"
    else:
        _check_reachable(address)
        kwargs["address"] = address
    target = address if address != "auto" else os.environ.get("RAY_ADDRESS", "")
    if _is_loopback(target) and not address.startswith("ray://"):
        # a cluster on 127.0.0.1 stays there: this driver advertises the
        # loopback address too, not the machine's network interface
        kwargs["_node_ip_address"] = "127.0.0.1"
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        # no cluster for "auto", a head that is not Ray, or Ray versions
        # that differ between this driver and the cluster
        raise ClusterError(
            f"Cannot join the Ray cluster at {address!r}: {exc}. "
            + _start_head_hint(address)
        ) from exc
    return ray


# --- tasks: they run on the cluster's workers -------------------------------


def _estimate_task(kwargs):
    """{phase: bytes} of the export (`pipeline.memory_phases`: builds the
    model once, converts nothing)."""
    from edge_backbones.exporter import options
    from edge_backbones.exporter.pipeline import memory_phases

    return memory_phases(options.job(kwargs))


def _export_task(kwargs, reserved):
    """Exports on this node within the `reserved` bytes the task asked
    for; ({file name: bytes}, failure message)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from edge_backbones.exporter.memory import MAX_MEMORY_ENV
    from edge_backbones.exporter.pipeline import export

    # the export splits itself (child conversions) to stay within what
    # the scheduler reserved, not what the node happens to have free
    os.environ[MAX_MEMORY_ENV] = str(reserved / 2**30)

    with tempfile.TemporaryDirectory(prefix="edge-backbones-") as folder:
        failure = None
        try:
            export(**{**kwargs, "out": folder})
        except FidelityError as exc:  # the other modes were written
            failure = str(exc)
        files = {}
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            if name.endswith((".tflite", ".json")) and os.path.isfile(path):
                with open(path, "rb") as f:
                    files[name] = f.read()
    return files, failure


def _describe_task(name):
    return describe_device(name)


def _row_task(job, name, content):
    """Times one row on this node: the worker `report.worker` as a serial
    run uses, on a copy of the artifact (`content`) in a local folder."""
    marker = os.environ.get(KILL_ROW_ONCE_ENV)
    if marker:
        with contextlib.suppress(FileExistsError):
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
            os.kill(os.getpid(), signal.SIGKILL)
    from edge_backbones.report.thermal import snapshot

    with tempfile.TemporaryDirectory(prefix="edge-backbones-row-") as folder:
        if content is not None:
            job = {**job, "path": os.path.join(folder, name)}
            with open(job["path"], "wb") as f:
                f.write(content)
        try:
            timing = collect._run_worker(job)
        except EdgeBackbonesError as exc:
            # this node's own error: a row failure, not a lost worker
            return {"error": f"{type(exc).__name__}: {exc}"}
    return {**timing, "thermal": snapshot()}


# --- the driver --------------------------------------------------------------


def _memory_per_node(ray):
    return [
        node["Resources"].get("memory", 0)
        for node in ray.nodes()
        if node.get("Alive")
    ]


def _export_all(ray, exports, cpus):
    """Runs the exports as tasks; returns the failure messages."""
    from edge_backbones.core import workspace
    from edge_backbones.exporter import tflite_metadata

    estimate = ray.remote(num_cpus=1, max_calls=1)(_estimate_task)
    task = ray.remote(max_calls=1, max_retries=MAX_RETRIES)(_export_task)
    phases = ray.get([estimate.remote(kwargs) for kwargs in exports])
    largest = max(_memory_per_node(ray), default=0)
    pending = {}
    for kwargs, phase in zip(exports, phases, strict=True):
        peak = max(phase, key=phase.__getitem__)
        need = phase[peak]
        if need > largest:
            raise ClusterError(
                f"Exporting {kwargs['model']} needs about {need / 2**30:.1f}"
                f" GiB (exporter.memory's estimate); the largest node of "
                f"the cluster offers {largest / 2**30:.1f} GiB to tasks. "
                "Add a node with more memory, or export a smaller size."
            )
        ref = task.options(memory=need, num_cpus=cpus).remote(kwargs, need)
        pending[ref] = kwargs
        _log(
            f"export {kwargs.get('name') or kwargs['model']}: a task "
            f"asking for {need / 2**30:.2f} GiB (its {peak} phase) and "
            f"{cpus} cores"
        )
    failures = []
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            kwargs = pending.pop(done[0])
            files, failure = ray.get(done[0])
            if failure:
                _log(f"export: {failure}")
                failures.append(failure)
            for name, content in files.items():
                if not name.endswith(".tflite"):
                    continue
                path = os.path.join(kwargs["out"], name)
                sidecar = tflite_metadata.sidecar_path(name)
                os.makedirs(kwargs["out"], exist_ok=True)
                workspace.write_pair(path, content, files[sidecar])
                _log(f"export: {path} (from the cluster)")
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    return failures


@dataclasses.dataclass
class _DeviceRun:
    """One device's rows: planned, submitted, finished."""

    device: Device
    rows: list  # (row, artifact) still to time
    results: ResultFile | None = None
    running: dict = dataclasses.field(default_factory=dict)  # ref -> row
    done: int = 0
    failed: list = dataclasses.field(default_factory=list)
    waiting_since: float | None = None
    gone: str | None = None  # why its rows cannot run

    def counts(self):
        waiting = len(self.rows) if self.results is None else 0
        queued = 0 if self.results is None else len(self.rows)
        return (
            f"{self.device.name}: {self.done} done, "
            f"{len(self.running) + queued} running, {waiting} waiting"
        )


class _Progress:
    """Rows done / running / waiting per device: one line per change (a
    line rewritten in place on a terminal)."""

    def __init__(self):
        self.last = None
        self.tty = sys.stderr.isatty()

    def show(self, runs):
        line = "report: " + " | ".join(run.counts() for run in runs)
        if line == self.last:
            return
        self.last = line
        if self.tty:
            sys.stderr.write("\r\x1b[K" + line)
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def close(self):
        if self.tty and self.last:
            sys.stderr.write("\n")


def _has_node(ray, name):
    return ray.cluster_resources().get(device_resource(name), 0) > 0


def _start_device(ray, run, settings, source, artifacts_content):
    """Describes the device's node, opens its result file and submits
    its rows."""
    resources = {device_resource(run.device.name): 1}
    describe = ray.remote(num_cpus=0, resources=resources)(_describe_task)
    device = ray.get(describe.remote(run.device.name))
    run_settings = {
        **source,
        "threads": list(run.device.threads),
        "runs": settings.runs,
        "warmup": settings.warmup,
        "cluster": True,
    }
    run.results = ResultFile(
        collect.result_path(settings.out, run.device.name),
        device,
        new_run(settings.command, run_settings),
        resume=settings.resume,
    )
    task = ray.remote(num_cpus=0, resources=resources, max_retries=MAX_RETRIES)(
        _row_task
    )
    for row, artifact in run.rows:
        if run.results.has(row):
            run.done += 1
            continue
        job = collect._job(row, artifact, settings.runs, settings.warmup)
        name = content = None
        if "path" in job:  # a .tflite row: the node gets the file's bytes
            name = os.path.basename(artifact["path"])
            content = artifacts_content[artifact["path"]]
        run.running[task.remote(job, name, content)] = row
    run.rows = []


def _finish_row(ray, run, ref):
    row = run.running.pop(ref)
    label = f"{run.device.name}: {collect.row_label(row)}"
    try:
        timing = ray.get(ref)
    except Exception as exc:  # the task died more than MAX_RETRIES times
        timing = {"error": f"{type(exc).__name__}: {exc}"}
    if "error" in timing:
        _log(f"{label}: FAILED: {timing['error']}")
        run.failed.append(label)
        run.results.fail(label, timing["error"], key=row_key(row))
        return
    if not run.results.has(row):  # a row is added once
        run.results.add(collect.timed_row(row, timing))
    run.done += 1


def _time_all(ray, runs, settings, source, device_timeout):
    """Times every device's rows as their nodes appear; returns the
    messages of devices that never got one."""
    # each artifact's bytes go to the object store once, for every device
    contents = {}
    for run in runs:
        for _, artifact in run.rows:
            path = artifact["path"]
            if path not in contents:
                with open(path, "rb") as f:
                    contents[path] = ray.put(f.read())
    progress = _Progress()
    try:
        while any(r.rows or r.running for r in runs if r.gone is None):
            now = time.monotonic()
            for run in runs:
                if run.gone is not None or (not run.rows and not run.running):
                    continue
                present = _has_node(ray, run.device.name)
                if present:
                    run.waiting_since = None
                    if run.results is None:
                        _start_device(ray, run, settings, source, contents)
                    continue
                if run.waiting_since is None:
                    run.waiting_since = now
                    _log(
                        f"{run.device.name}: waiting for a node with "
                        f"resource {device_resource(run.device.name)!r}"
                    )
                elif now - run.waiting_since > device_timeout:
                    _give_up(ray, run, device_timeout)
            progress.show(runs)
            pending = [ref for r in runs for ref in r.running]
            if not pending:
                time.sleep(_POLL_S)
                continue
            done, _ = ray.wait(pending, num_returns=1, timeout=_POLL_S)
            for ref in done:
                run = next(r for r in runs if ref in r.running)
                _finish_row(ray, run, ref)
        progress.show(runs)
    except BaseException:
        progress.close()
        for run in runs:
            for ref in run.running:
                ray.cancel(ref, force=True)
            if run.results is not None:
                run.results.finish()
        raise
    progress.close()
    return [run.gone for run in runs if run.gone]


def _give_up(ray, run, timeout):
    what = "left the cluster" if run.results is not None else "joined"
    count = len(run.rows) + len(run.running)
    run.gone = (
        f"device {run.device.name!r}: no node with resource "
        f"{device_resource(run.device.name)!r} {what} within {timeout:.0f}"
        f" s, so its {count} row(s) were not timed. Start one on the "
        f"device: ray start --address HEAD:6379 --resources "
        f"'{{\"{device_resource(run.device.name)}\": 1}}', then run again "
        "with --resume."
    )
    for ref in run.running:
        ray.cancel(ref, force=True)
    _log(run.gone)


def collect_recipe(
    recipe: str,
    out: str,
    device_name: str,
    *,
    cluster: str,
    device_timeout: float = DEVICE_TIMEOUT_S,
    **settings: Any,
) -> list[str]:
    """`collect.collect_recipe` on a Ray cluster; the result files' paths.

    `cluster` is the address (`connect`). The recipe's [[device]] tables
    name the devices (none: this machine as `device_name`, with
    `threads`). Raises ReportError (with `result_paths`) if rows failed,
    ClusterError if a device never got a node.
    """
    run_settings = collect.RunSettings(out, device_name, **settings)
    devices = load_devices(recipe) or [
        Device(device_name, tuple(run_settings.threads))
    ]
    ray = connect(cluster, device_name)
    try:
        _log(f"cluster: {ray.cluster_resources()}")
        exports = collect.recipe_exports(recipe, out, run_settings.resume)
        cpus = max(1, min(os.cpu_count() or 1, 2))
        failures = _export_all(ray, exports, cpus)
        artifacts, source = collect.recipe_artifacts(recipe, out, failures)
        runs = []
        for device in devices:
            device_settings = dataclasses.replace(
                run_settings, device_name=device.name, threads=device.threads
            )
            plan = collect._plan(
                artifacts, device_settings, keras=device.keras, gpu=False
            )
            runs.append(_DeviceRun(device, plan))
        missing = _time_all(ray, runs, run_settings, source, device_timeout)
    finally:
        ray.shutdown()
    paths = [run.results.path for run in runs if run.results is not None]
    for run in runs:
        if run.results is not None:
            run.results.finish()
    failed = [label for run in runs for label in run.failed]
    if missing:
        unreached = ClusterError(" | ".join(missing))
        unreached.result_paths = paths
        raise unreached
    if failed:
        error = ReportError(
            f"{len(failed)} row(s) failed: {failed}. The other rows are in "
            f"{paths}; fix the cause (see above) and run again with "
            "--resume to time only the missing rows."
        )
        error.result_paths = paths
        raise error
    return paths
