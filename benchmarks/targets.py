"""The export targets' table, measured with the report machinery.

    python benchmarks/targets.py                 # MiT-B0 @512 + ViTDet small
    python benchmarks/targets.py --vitdet-b      # + SAM ViT-B @1024

Exports MiT-B0 (random weights, seeded: nothing is downloaded) in our modes
and target recipes with `edge_backbones.export()`, converts keras-hub's MiT-B0
(same architecture, random weights) the stock way (Keras SavedModel export +
a default TFLiteConverter; the `bench` extra) and a small ViTDet. Every
artifact is verified on the held-out photos against its own Keras float
model, then timed by `edge_backbones.report` (each row in a fresh process)
in `--rounds` rounds, so every model sees the same machine load; the table
takes the median of the round medians. Targets are ratios within the run,
never absolute times. Written to `--out` atomically: `artifacts/`, the
report of the first round (`report.md`, `.html`, `.csv`), `targets.md`
and `targets.json`.

Only public APIs of the package are used.
"""

import argparse
import os
import sys
import tempfile
import time

import numpy as np

from edge_backbones.atomic_io import write_file_atomic, write_json_atomic
from edge_backbones.core import fidelity as fidelity_lib
from edge_backbones.core.artifact import plain_scheme
from edge_backbones.exporter import tflite_metadata
from edge_backbones.text import megabytes

__all__ = ["checks", "main", "table", "time_rounds"]

# modes of our MiT-B0 export, and the ViTDet ones
MIT_MODES = ("fp32", "int8", "int8_mixed", "int16x8")
MIT_TARGETS = ("cpu", "npu")
VITDET_MODES = ("fp32", "int8_mixed")
VITDET_TARGETS = ("cpu",)
# measure, never fail: every artifact is kept and judged from the table
NO_GATE = 1e-6
# ViTDet small: ViT-S widths with SAM's windowed/global attention layout
VITDET_SMALL = {
    "hidden_size": 384,
    "num_layers": 12,
    "intermediate_dim": 1536,
    "num_heads": 6,
    "global_attention_layer_indices": [2, 5, 8, 11],
    "patch_size": 16,
    "num_output_channels": 256,
    "window_size": 14,
}
# keras-hub's MiT-B0 (keras_hub/src/models/mit/mit_presets.py)
KERAS_HUB_MIT_B0 = {
    "layerwise_depths": [2, 2, 2, 2],
    "num_layers": 4,
    "layerwise_num_heads": [1, 2, 5, 8],
    "layerwise_sr_ratios": [8, 4, 2, 1],
    "max_drop_path_rate": 0.1,
    "layerwise_patch_sizes": [7, 3, 3, 3],
    "layerwise_strides": [4, 2, 2, 2],
    "hidden_dims": [32, 64, 160, 256],
}
STOCK = "stock_mit_b0"


def _log(line):
    print(f"targets: {line}", file=sys.stderr, flush=True)


def export_ours(model, size, modes, targets, args, name, config=None):
    """Our artifacts of one model (random weights), every gate open."""
    import edge_backbones

    edge_backbones.export(
        model,
        image_size=size,
        modes=modes,
        targets=targets,
        calibration=args.calibration,
        out=os.path.join(args.out, "artifacts"),
        random_weights=True,
        thresholds=dict.fromkeys((*modes, *targets), NO_GATE),
        max_images=args.max_images,
        num_threads=args.threads,
        seed=args.seed,
        name=name,
        config=config,
    )


def _photos(args, size):
    """(calibration, held-out) float arrays, MiT's preprocessing."""
    from edge_backbones.exporter.calibration import load_photos, preprocessed
    from edge_backbones.models.mit.mit_presets import PREPROCESSING

    calib = load_photos(
        args.calibration, seed=args.seed, max_images=args.max_images
    )
    return [
        [
            np.asarray(a, np.float32)
            for a in preprocessed(calib, split, spec, size)
        ]
        for split, spec in (
            ("calibration", PREPROCESSING),
            ("holdout", PREPROCESSING),
        )
    ]


def _stock_model(size, seed):
    """keras-hub's MiT-B0 as {level: tensor}, random weights (seeded)."""
    import keras
    import keras_hub

    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.MiTBackbone(
        **KERAS_HUB_MIT_B0, image_shape=(*size, 3)
    )
    return keras.Model(backbone.input, backbone.pyramid_outputs)


def _stock_convert(saved, mode, calibration):
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(saved)
    if mode == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]

        def dataset():
            for x in calibration:
                yield [x[None]]

        converter.representative_dataset = dataset
    return converter.convert()


def _outputs(path, holdout, threads):
    from edge_backbones.runtime import EdgeModel

    return EdgeModel(path, num_threads=threads).run_batch(holdout)


def _by_shape(outputs, reference):
    """Stock exports name outputs output_0..; match levels by shape:
    {level: (output key, outputs)}."""
    matched = {}
    for name, ref in reference.items():
        for key, value in outputs.items():
            taken = [k for k, _ in matched.values()]
            if value.shape == ref.shape and key not in taken:
                matched[name] = (key, value)
                break
    return matched


def export_stock(size, args):
    """keras-hub MiT-B0 converted the stock way, verified, with metadata.

    The metadata (the package's schema, written by `write_artifact`) is
    what the report reads: model, mode, input, outputs and the fidelity
    measured here, so stock rows sit in the same tables as ours.
    """
    calibration, holdout = _photos(args, size)
    model = _stock_model(size, args.seed)
    reference = {k: [] for k in model.output}
    for x in holdout:
        for name, value in model(x[None]).items():
            reference[name].append(np.asarray(value))
    reference = {k: np.concatenate(v) for k, v in reference.items()}
    with tempfile.TemporaryDirectory() as tmp:
        saved = os.path.join(tmp, "saved_model")
        model.export(saved, format="tf_saved_model", verbose=False)
        for mode in ("fp32", "int8"):
            _log(f"stock keras-hub MiT-B0: converting {mode}")
            content = _stock_convert(saved, mode, calibration)
            candidate = os.path.join(tmp, f"{mode}.tflite")
            write_file_atomic(candidate, content)
            outputs = _outputs(candidate, holdout, args.threads)
            matched = _by_shape(outputs, reference)
            fidelity = fidelity_lib.compare(
                reference, {name: value for name, (_, value) in matched.items()}
            )
            _write_stock(
                args,
                size,
                mode,
                content,
                fidelity,
                matched,
                model.count_params(),
            )


def _write_stock(args, size, mode, content, fidelity, matched, params):
    """Writes a stock conversion with complete artifact metadata (the
    schema every artifact meets), its outputs under the SignatureDef's own
    keys, which the runtime checks."""
    from edge_backbones.models.mit.mit_presets import PREPROCESSING
    from edge_backbones.runtime import EdgeModel
    from edge_backbones.runtime.parity import verified_on

    stem = f"{STOCK}_{size[0]}x{size[1]}_{mode}"
    with tempfile.TemporaryDirectory() as tmp:
        probe = os.path.join(tmp, "probe.tflite")
        write_file_atomic(probe, content)
        model = EdgeModel(probe, num_threads=1)
        spec, output_specs = model.input_spec, model.output_specs
        on = verified_on(model)
        del model
    keys = {key for key, _ in matched.values()}
    metadata = {
        "schema": tflite_metadata.SCHEMA,
        "model": {
            "name": STOCK,
            "class_name": "keras_hub.models.MiTBackbone",
            "config": {},
            "weights": None,
            "params": int(params),
        },
        "mode": mode,
        "recipe": None,
        # TensorFlow's converter with its defaults (int8: Optimize.DEFAULT
        # and a representative dataset, float I/O)
        "scheme": plain_scheme(f"stock_{mode}", mode, mode),
        "input": {
            "name": spec.name,
            "shape": list(spec.shape),
            "dtype": spec.dtype,
            "quantization": spec.quantization,
            "preprocessing": dict(PREPROCESSING),
        },
        "outputs": {
            key: {
                "shape": list(out.shape),
                "stride": size[0] // out.shape[1]
                if len(out.shape) == 4
                else None,
                "channels": out.shape[-1],
                "dtype": out.dtype,
                "quantization": out.quantization,
            }
            for key, out in output_specs.items()
            if key in keys
        },
        "fidelity": {
            "images": 0,
            "levels": {},
            **fidelity,
            "holdout": os.fspath(args.calibration),
        },
        "verified_on": on,
        "graph": tflite_metadata.graph_summary(content),
        "versions": tflite_metadata.versions(),
        "created": tflite_metadata.utc_now(),
    }
    path = os.path.join(args.out, "artifacts", stem + ".tflite")
    tflite_metadata.write_artifact(path, content, metadata)


def time_rounds(args):
    """Times every artifact `args.rounds` times with the report's collector.

    Returns ({(model, mode): row of the first round, with the median of
    the round medians as `latency_ms`}, [result file per round]).
    """
    from edge_backbones.errors import ReportError
    from edge_backbones.report.collect import collect_artifacts
    from edge_backbones.report.records import load_results
    from edge_backbones.runtime.model_file import read_model_file

    rows, medians, paths = {}, {}, []
    for index in range(1, args.rounds + 1):
        _log(f"timing round {index}/{args.rounds}")
        out = os.path.join(args.out, f"round{index}")
        os.makedirs(out, exist_ok=True)
        try:
            path = collect_artifacts(
                os.path.join(args.out, "artifacts"),
                out,
                f"{args.device_name}-round{index}",
                threads=(args.threads,),
                runs=args.runs,
                warmup=2,
            )
        except ReportError as exc:  # the other rows were measured
            _log(str(exc))
            path = exc.result_path
        paths.append(path)
        for row in load_results(path)["rows"]:
            key = (row["model"]["name"], row["mode"])
            medians.setdefault(key, []).append(row["latency_ms"]["median"])
            if key not in rows:
                artifact = os.path.join(out, row["artifact"]["path"])
                histogram = read_model_file(artifact).op_histogram
                rows[key] = {**row, "op_histogram": histogram}
    for key, row in rows.items():
        row["round_medians_ms"] = medians[key]
        row["latency_ms"] = float(np.median(medians[key]))
    return rows, paths


def _worst(row, metric):
    # None: every level exact (an SQNR of infinity), or no fidelity
    return fidelity_lib.min_level(row.get("fidelity"), metric)


def _qdq(row):
    hist = row["op_histogram"]
    return hist.get("QUANTIZE", 0) + hist.get("DEQUANTIZE", 0)


def _check_mit(rows, add):
    fp32, cpu = rows.get(("mit_b0", "fp32")), rows.get(("mit_b0", "cpu"))
    stock32, stock8 = rows.get((STOCK, "fp32")), rows.get((STOCK, "int8"))
    if fp32 and stock32:
        ratio = fp32["latency_ms"] / stock32["latency_ms"]
        add("our fp32 <= 0.8x stock fp32", ratio <= 0.8, f"{ratio:.2f}x")
        add(
            "our fp32: fully delegated to XNNPACK",
            bool(fp32["fully_delegated"]),
            f"CPU ops left: {fp32.get('cpu_ops') or 'none'}",
        )
    if cpu and fp32:
        ratio = cpu["latency_ms"] / fp32["latency_ms"]
        add("cpu <= 1.3x our fp32 latency", ratio <= 1.3, f"{ratio:.2f}x")
        cos, sqnr = _worst(cpu, "cosine"), _worst(cpu, "sqnr_db")
        add("cpu: every level cosine >= 0.999", cos >= 0.999, f"{cos:.5f}")
        sqnr_ok = sqnr is None or sqnr >= 25
        add("cpu: every level SQNR >= 25 dB", sqnr_ok, f"{sqnr} dB")
        smaller = fp32["artifact"]["size_bytes"] / cpu["artifact"]["size_bytes"]
        add("cpu: >= 3x smaller than fp32", smaller >= 3, f"{smaller:.2f}x")
    if cpu and stock8:
        faster = stock8["latency_ms"] / cpu["latency_ms"]
        add("cpu >= 6x faster than stock int8", faster >= 6, f"{faster:.1f}x")


def _check_integer(rows, add):
    npu = rows.get(("mit_b0", "npu"))
    int16 = rows.get(("mit_b0", "int16x8"))
    if npu:
        cos = _worst(npu, "cosine")
        add("npu: every level cosine >= 0.995", cos >= 0.995, f"{cos:.5f}")
        add("npu: no QUANTIZE/DEQUANTIZE", _qdq(npu) == 0, f"{_qdq(npu)}")
        ops = sum(npu["op_histogram"].values())
        add("npu: <= 390 ops (MiT-B0)", ops <= 390, f"{ops}")
    if int16:
        cos = _worst(int16, "cosine")
        add("int16x8: cosine >= 0.9999", cos >= 0.9999, f"{cos:.6f}")
    for model in sorted({m for m, _ in rows if m.startswith("vit")}):
        v32, vcpu = rows.get((model, "fp32")), rows.get((model, "cpu"))
        if v32 and vcpu:
            ratio = vcpu["latency_ms"] / v32["latency_ms"]
            add(f"{model}: cpu faster than fp32", ratio < 1, f"{ratio:.2f}x")


def checks(rows):
    """[(target, measured, PASS/FAIL)] for the export targets."""
    found = []

    def add(target, ok, measured):
        found.append((target, measured, "PASS" if ok else "FAIL"))

    _check_mit(rows, add)
    _check_integer(rows, add)
    return found


def _format(value, spec):
    return "exact" if value is None else format(value, spec)


def _table_row(model, mode, row, fp32_ms):
    size = megabytes(row["artifact"]["size_bytes"])
    return (
        f"| {model} | {mode} | {size:.2f} | {row['latency_ms']:.1f} "
        f"| {row['latency_ms'] / fp32_ms:.2f} "
        f"| {_format(_worst(row, 'cosine'), '.5f')} "
        f"| {_format(_worst(row, 'sqnr_db'), '.1f')} "
        f"| {sum(row['op_histogram'].values())} | {_qdq(row)} |"
    )


def table(rows, found):
    """The Markdown table of every row, then one line per target."""
    lines = [
        "| model | mode | MB | ms | x fp32 | worst cos | worst SQNR dB "
        "| ops | Q/DQ |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    fp32 = {
        m: r["latency_ms"] for (m, mode), r in rows.items() if mode == "fp32"
    }
    for (model, mode), row in rows.items():
        lines.append(_table_row(model, mode, row, fp32.get(model, np.nan)))
    lines.append("")
    lines += [
        f"- {verdict} {target}: {measured}"
        for target, measured, verdict in found
    ]
    return "\n".join(lines) + "\n"


def _export_all(args):
    from edge_backbones.exporter.options import parse_image_size

    size = parse_image_size(args.size)
    os.makedirs(os.path.join(args.out, "artifacts"), exist_ok=True)
    export_ours("mit_b0", size, MIT_MODES, MIT_TARGETS, args, "mit_b0")
    if not args.skip_stock:
        export_stock(size, args)
    if not args.skip_vitdet:
        vit_size = parse_image_size(args.vitdet_size)
        export_ours(
            "sam_vit_base", vit_size, VITDET_MODES, VITDET_TARGETS, args,
            "vitdet_small", config=VITDET_SMALL,
        )  # fmt: skip
    if args.vitdet_b:
        export_ours("sam_vit_base", 1024, ("fp32",), ("cpu",), args, "vitdet_b")


def _parser():
    parser = argparse.ArgumentParser(
        prog="python benchmarks/targets.py",
        description="Measure the export targets side by side.",
    )
    parser.add_argument("--size", default="512", help="MiT input, e.g. 512")
    parser.add_argument("--vitdet-size", default="512")
    parser.add_argument("--calibration", default="calibration")
    parser.add_argument("--max-images", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0, help="Weights seed.")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device-name", default="this-machine")
    parser.add_argument("--out", default="artifacts/targets")
    parser.add_argument(
        "--skip-stock", action="store_true", help="No keras-hub baseline."
    )
    parser.add_argument(
        "--skip-vitdet", action="store_true", help="MiT-B0 only."
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="Time the artifacts of a previous run in --out again without "
        "converting; for a re-run on a quiet machine.",
    )
    parser.add_argument(
        "--vitdet-b",
        action="store_true",
        help="Also SAM ViT-B at 1024 (slow: minutes per conversion).",
    )
    return parser


def main(argv=None):
    args = _parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    started = time.perf_counter()
    if not args.reuse:
        _export_all(args)
    rows, paths = time_rounds(args)
    found = checks(rows)
    text = table(rows, found)
    print(text)
    _write_report(paths, args.out)
    write_file_atomic(os.path.join(args.out, "targets.md"), text)
    write_json_atomic(
        os.path.join(args.out, "targets.json"),
        {
            "args": vars(args),
            "rows": [
                {key: row[key] for key in ("model", "mode", "latency_ms",
                 "round_medians_ms", "artifact", "fidelity", "fully_delegated",
                 "op_histogram")}
                for row in rows.values()
            ],
            "checks": found,
            "seconds": time.perf_counter() - started,
            "load_average": os.getloadavg(),
        },
        indent=2,
    )  # fmt: skip
    return 0


def _write_report(paths, out):
    """The report's own Markdown/HTML/CSV (and PNG, with matplotlib)."""
    from edge_backbones.errors import MissingDependencyError
    from edge_backbones.report.merge import load_and_merge
    from edge_backbones.report.render import write_report

    merged = load_and_merge(paths)
    try:
        write_report(merged, out)
    except MissingDependencyError:
        write_report(merged, out, figure=False)


if __name__ == "__main__":
    sys.exit(main())
