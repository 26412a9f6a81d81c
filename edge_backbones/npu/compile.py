"""Ahead-of-time compile of an exported artifact with LiteRT's NPU plugins.

`compile_artifact("x_npu.tflite", "SM8650,SM8750", out="compiled/")` runs
`ai_edge_litert.aot.aot_compile` once per SoC and writes
`compiled/x_npu_SM8650.tflite` (+ sidecar JSON): the graph with every
partition the vendor compiler took replaced by a DISPATCH_OP that carries
the compiled bytecode, and our metadata with a `compiled` block (SoC,
plugin and SDK versions, ops per partition, ops left on the CPU by kind,
compile time).

The compiled file is a small FlatBuffer followed by the bytecode at fixed
offsets, so the metadata cannot be re-serialized after the compile. We
embed it before, padded with spaces to a reserved size, and overwrite that
payload in place afterwards (trailing spaces are valid JSON).
"""

import dataclasses
import hashlib
import json
import os
import tempfile
import time
from importlib import metadata as package_metadata

from edge_backbones.atomic_io import dumps_json
from edge_backbones.core.artifact import validate
from edge_backbones.core.workspace import write_pair
from edge_backbones.errors import CompileError, MetadataError
from edge_backbones.npu.sdk import toolchain_for
from edge_backbones.npu.socs import VENDORS, parse_socs
from edge_backbones.runtime.metadata import (
    DIGEST_KEY,
    DIGEST_PREFIX,
    METADATA_NAME,
    SCHEMA,
    SCHEMA_COMPILED,
    content_sha256,
    file_sha256,
    read_metadata,
)
from edge_backbones.runtime.model_file import read_model_file

__all__ = [
    "CompiledArtifact",
    "compile_artifact",
    "compile_for_soc",
    "compile_model",
    "run_plugin",
    "compiled_name",
    "format_table",
    "update_compiled",
    "write_compiled",
]

_DISPATCH = "CUSTOM:DISPATCH_OP"
# room for the `compiled` block (and a simulated-fidelity block) on top of
# the source metadata
_RESERVE = 16384


@dataclasses.dataclass
class CompiledArtifact:
    soc: str
    accelerator: str
    path: str | None  # None until written
    ops_on_npu: int
    ops_total: int
    partitions: int
    cpu_op_kinds: dict  # op name -> count, ops the plugin left on the CPU
    compile_seconds: float

    @property
    def ops_on_cpu(self):
        return self.ops_total - self.ops_on_npu

    @property
    def fully_offloaded(self):
        return self.ops_on_cpu == 0 and self.partitions == 1


def _pack(model):
    import flatbuffers

    builder = flatbuffers.Builder(1 << 20)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def with_reserved_metadata(content, meta, reserve=_RESERVE):
    """`content` with `meta` embedded as JSON padded by `reserve` spaces."""
    import numpy as np
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    payload = dumps_json(without_integrity(meta)).encode("utf-8")
    payload += b" " * reserve
    entries = [m for m in model.metadata or [] if m.name != b"edge_backbones"]
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(payload, dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = [*entries, entry]
    return _pack(model)


def patch_metadata(content, meta):
    """`content` with our metadata payload overwritten in place by `meta`.

    As the exporter does, the JSON starts with `content_sha256`: the sha256
    of the returned bytes with that digest's 64 digits read as "0"s, which
    `EdgeModel` checks on load.
    """
    spans = read_model_file(content).metadata_spans
    if METADATA_NAME not in spans:
        raise MetadataError(
            "The compiled model lost the edge_backbones metadata entry; the "
            "vendor plugin did not keep the model's metadata list."
        )
    start, end = spans[METADATA_NAME]
    meta = {DIGEST_KEY: "0" * 64, **without_integrity(meta)}
    payload = dumps_json(meta).encode("utf-8")
    if len(payload) > end - start:
        raise MetadataError(
            f"The compiled metadata needs {len(payload)} bytes but "
            f"{end - start} were reserved; raise _RESERVE in {__name__}."
        )
    out = bytearray(content)
    out[start:end] = payload + b" " * (end - start - len(payload))
    digits = (start + len(DIGEST_PREFIX), start + len(DIGEST_PREFIX) + 64)
    out[digits[0] : digits[1]] = content_sha256(out, digits).encode("ascii")
    return bytes(out)


def without_integrity(meta):
    """`meta` without the keys that describe one file's bytes."""
    return {
        k: v
        for k, v in meta.items()
        if k not in (DIGEST_KEY, "sha256", "size_bytes")
    }


def _source_metadata(path):
    meta = read_metadata(path, read_model_file(path))
    if meta is None:
        raise MetadataError(
            f"{path!r} has no edge_backbones metadata. `compile` takes an "
            "artifact written by `edge-backbones export` (best: "
            "--target npu)."
        )
    if meta["schema"] != SCHEMA:
        raise MetadataError(
            f"{path!r} is already compiled (schema {meta['schema']!r}, "
            f"for {meta.get('compiled', {}).get('soc')}). Compile the "
            "exported artifact it came from."
        )
    return meta


def run_plugin(staged_path, soc, toolchain, work_dir):
    """Compiles `staged_path` for `soc`; (compiled path, stats, seconds)."""
    from ai_edge_litert.aot import aot_compile

    extra = {}
    if soc.graph_backend:
        extra["intel_openvino_graph_backends"] = soc.graph_backend
    with toolchain.active():
        started = time.perf_counter()
        result = aot_compile.aot_compile(
            staged_path,
            output_dir=work_dir,
            target=soc.litert_target(),
            keep_going=True,
            **extra,
        )
        seconds = time.perf_counter() - started
    if result.failed_backends or not result.models_with_backend:
        reasons = "; ".join(str(e) for _, e in result.failed_backends)
        raise CompileError(
            f"LiteRT's {VENDORS[soc.vendor].label} plugin failed for "
            f"{soc.name}: {reasons or 'no model produced'}. The plugin's "
            "log is in the .error file named above."
        )
    ((_, model),) = result.models_with_backend
    stats = model.partition_stats.subgraph_stats
    return model.path, stats, seconds


def _compiled_block(soc, toolchain, stats, cpu_ops, seconds, source):
    return {
        "soc": soc.name,
        "vendor": VENDORS[soc.vendor].label,
        "accelerator": soc.accelerator,
        "x86_run": soc.x86_run,
        "plugin": {
            "ai_edge_litert": package_metadata.version("ai-edge-litert")
        },
        "sdk": toolchain.versions,
        "partitions": [
            {
                "subgraph": s.subgraph_index,
                "ops_on_npu": s.num_ops_offloaded,
                "ops_total": s.num_total_ops,
                "partitions": s.num_partitions_offloaded,
            }
            for s in stats
        ],
        "cpu_op_kinds": cpu_ops,
        "compile_seconds": round(seconds, 2),
        "source": source,
    }


def compile_model(path, soc, log=print):
    """Compiles `path` for one Soc; (compiled bytes, metadata, record).

    Nothing is written: `write_compiled` puts the pair in place, after
    whatever verification the caller runs.
    """
    toolchain = toolchain_for(soc)
    for note in toolchain.notes:
        log(note)
    meta = _source_metadata(path)
    with open(path, "rb") as f:
        content = f.read()
    stem = os.path.splitext(os.path.basename(path))[0]
    with tempfile.TemporaryDirectory(prefix="edge_backbones_aot_") as work:
        staged = os.path.join(work, f"{stem}.tflite")
        with open(staged, "wb") as f:
            f.write(with_reserved_metadata(content, meta))
        compiled_path, stats, seconds = run_plugin(staged, soc, toolchain, work)
        with open(compiled_path, "rb") as f:
            compiled = f.read()
    parsed = read_model_file(compiled)
    cpu_ops = {k: v for k, v in parsed.op_histogram.items() if k != _DISPATCH}
    source = {
        "file": os.path.basename(path),
        "sha256": file_sha256(path),
        "fidelity_cpu": meta.get("fidelity"),
    }
    final = {
        **without_integrity(meta),
        "schema": SCHEMA_COMPILED,
        # vs the float model, in the vendor's simulation: set by a
        # verification (export --soc); the source's CPU figures are in
        # compiled.source
        "fidelity": None,
        "compiled": _compiled_block(
            soc, toolchain, stats, cpu_ops, seconds, source
        ),
    }
    record = CompiledArtifact(
        soc.name,
        soc.accelerator,
        None,
        sum(s.num_ops_offloaded for s in stats),
        sum(s.num_total_ops for s in stats),
        sum(s.num_partitions_offloaded for s in stats),
        cpu_ops,
        seconds,
    )
    return compiled, final, record


def compiled_name(path, soc):
    """`x_npu.tflite` -> `x_npu_SM8650.tflite`."""
    stem = os.path.splitext(os.path.basename(path))[0]
    return f"{stem}_{soc.name}.tflite"


def compile_for_soc(path, soc, out_dir, log=print):
    """Compiles the artifact at `path` for one Soc into `out_dir`."""
    compiled, meta, record = compile_model(path, soc, log)
    record.path = os.path.join(out_dir, compiled_name(path, soc))
    write_compiled(record.path, compiled, meta)
    return record


def update_compiled(path, updates):
    """Rewrites a compiled artifact's metadata with `updates` merged into
    its `compiled` block (where `numerics_vs_cpu` belongs)."""
    with open(path, "rb") as f:
        content = f.read()
    meta = read_metadata(path, read_model_file(content))
    meta = {
        **without_integrity(meta),
        "compiled": {**meta["compiled"], **updates},
    }
    write_compiled(path, content, meta)


def write_compiled(path, compiled, meta):
    """Writes the compiled model with `meta` patched in, and its sidecar.

    Both are staged in a work folder beside `path` and moved into place
    together (`core.workspace.write_pair`), so a failure leaves the
    previous good pair (or nothing).
    """
    validate(meta, f"the compiled metadata of {path!r}")
    content = patch_metadata(compiled, meta)
    sidecar = {
        # the embedded JSON as written, content_sha256 first
        **json.loads(read_model_file(content).metadata[METADATA_NAME]),
        "sha256": hashlib.sha256(content).hexdigest(),
        "size_bytes": len(content),
    }
    validate(sidecar, f"the sidecar of {path!r}")
    # all or none, as the export's own artifacts (a kill is undone by the
    # next export into the folder)
    write_pair(path, content, dumps_json(sidecar, indent=2) + "\n")


def compile_artifact(path, socs, out, log=print):
    """Compiles `path` for each SoC in `socs` ("SM8650,SM8750" or a list).

    Every SoC is checked (known, SDK available) before the first compile,
    so a typo or a missing SDK fails in a second, not after a long compile.
    """
    parsed = parse_socs(socs if isinstance(socs, str) else ",".join(socs))
    for soc in parsed:
        toolchain_for(soc)
    _source_metadata(path)
    os.makedirs(out, exist_ok=True)
    return [compile_for_soc(path, soc, out, log) for soc in parsed]


def format_table(results):
    """A Markdown table: ops on the NPU / CPU, partitions, compile time."""
    lines = [
        "| SoC | runs on | ops on NPU | ops on CPU | partitions | compile s "
        "| file |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        kinds = ", ".join(f"{k} {v}" for k, v in r.cpu_op_kinds.items())
        cpu = f"{r.ops_on_cpu}" + (f" ({kinds})" if kinds else "")
        lines.append(
            f"| {r.soc} | {r.accelerator} | {r.ops_on_npu}/{r.ops_total} | "
            f"{cpu} | {r.partitions} | {r.compile_seconds:.1f} | "
            f"{os.path.basename(r.path)} |"
        )
    return "\n".join(lines)
