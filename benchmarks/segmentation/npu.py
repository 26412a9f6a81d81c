"""The segmenter on the NPU: MiT-B0 SegFormer (150 classes, 512x512,
random transformers weights, seed 0) as `npu` (a16w8) and `npu_int8`
artifacts, each compiled ahead of time for a Snapdragon SoC with
LiteRT's Qualcomm plugin and run on the held-out photos in QNN's x86 HTP
simulator.

Records, per target: ops on the HTP / on the CPU, partitions, the mask
agreement of the simulated class maps with the float Keras model's (worst
image and mean) beside LiteRT's CPU run of the same source artifact.
The gates are lowered to record the figures (random weights leave 150
logits nearly tied); the table says whether each meets its target.
Simulated figures are numerics, never a device's speed. Writes
`npu.json` in OUT (strict JSON, atomically).

    nice python benchmarks/segmentation/npu.py OUT [--soc SM8650]
"""

import argparse
import json
import os
import pathlib
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from benchmarks.segmentation.measure import SIZE, _checkpoint  # noqa: E402

TARGETS = ("npu", "npu_int8")
# Qualcomm AI Hub's SegFormer-B0 (ADE20K, 512x512) in w8a8: its op count
AI_HUB_OPS = 610


def _sidecar(path):
    with open(os.path.splitext(path)[0] + ".json") as f:
        return json.load(f)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=pathlib.Path)
    parser.add_argument("--soc", default="SM8650")
    parser.add_argument("--max-images", type=int, default=16)
    args = parser.parse_args(argv)
    from edge_backbones.atomic_io import write_json_atomic
    from edge_backbones.exporter import export

    args.out.mkdir(parents=True, exist_ok=True)
    folder = args.out / "checkpoint"
    _checkpoint(folder)
    started = time.perf_counter()
    records = export(
        str(folder),
        image_size=SIZE,
        targets=list(TARGETS),
        socs=args.soc,
        calibration=str(REPO / "calibration"),
        max_images=args.max_images,
        out=str(args.out / "artifacts"),
        name="segformer_b0_random",
        # measured, not gated (the table compares with the targets)
        thresholds=dict.fromkeys(TARGETS, 1e-6),
        mask_thresholds=dict.fromkeys(TARGETS, 1e-6),
    )
    seconds = time.perf_counter() - started
    by_mode = {r.mode: r for r in records}
    rows = {}
    for target in TARGETS:
        source = _sidecar(by_mode[target].path)
        compiled = _sidecar(by_mode[f"{target}@{args.soc}"].path)
        block = compiled["compiled"]
        rows[target] = {
            "ops": source["graph"]["op_count"],
            "ops_on_npu": sum(p["ops_on_npu"] for p in block["partitions"]),
            "ops_total": sum(p["ops_total"] for p in block["partitions"]),
            "partitions": len(block["partitions"]),
            "cpu_op_kinds": block["cpu_op_kinds"],
            "simulated_mask_agreement": compiled["task"]["verification"][
                "mask_agreement"
            ],
            "simulated_miou_vs_float": compiled["task"]["verification"][
                "miou_vs_float"
            ],
            "cpu_mask_agreement": source["task"]["verification"][
                "mask_agreement"
            ],
            "compiled_fidelity": compiled.get("fidelity"),
        }
        print(f"{target}: {rows[target]}", flush=True)
    result = {
        "image_size": SIZE,
        "soc": args.soc,
        "ai_hub_ops": AI_HUB_OPS,
        "rows": rows,
        "seconds": round(seconds, 1),
        "load_average": list(os.getloadavg()),
        "note": "QNN's x86 HTP simulator: numerics, not device speed",
    }
    write_json_atomic(args.out / "npu.json", result, indent=1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
