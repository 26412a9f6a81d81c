"""Peak memory of an export, phase by phase, against the up-front estimate.

    python -m benchmarks.memory.measure mit_b0@224 sam_vit_base@256 \
        --modes fp32,fp16 --out benchmarks/memory/results.md

Each export runs in its own process (`edge-backbones export
--random-weights`), whose stderr carries the peak resident memory of each
phase (`exporter.memory.PhaseMeter`: model build, float reference,
SavedModel trace, calibration images, each mode's conversion and
verification). The table puts the highest of them beside
`exporter.memory.estimate_bytes` for the same model and size. Run the
large presets (sam_vit_huge@1024) on a quiet machine: they need what the
estimate says.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

_MARK = "memory: peak RSS MiB per phase "


def measure(preset, size, modes, calibration):
    """{phase: peak MiB} and the wall time of one export in a child."""
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "edge_backbones.cli",
                "export",
                preset,
                "--random-weights",
                "--image-size",
                str(size),
                "--modes",
                modes,
                "--out",
                out,
                "--calibration",
                calibration,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - started
    lines = [x for x in proc.stderr.splitlines() if x.startswith(_MARK)]
    if proc.returncode or not lines:
        tail = proc.stderr.strip().splitlines()[-3:]
        return None, seconds, f"exit {proc.returncode}: {' '.join(tail)}"
    return json.loads(lines[-1][len(_MARK) :]), seconds, None


def estimate_mib(preset, size):
    from edge_backbones.exporter import memory
    from edge_backbones.models.backbone import Backbone

    backbone = Backbone.from_preset(
        preset, load_weights=False, image_shape=(size, size, 3)
    )
    needed = memory.estimate_bytes(backbone, (size, size))
    return round(needed / 2**20), int(backbone.count_params())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("exports", nargs="+", help="PRESET@SIZE")
    parser.add_argument("--modes", default="fp32")
    parser.add_argument("--calibration", default="calibration")
    parser.add_argument("--out", default="benchmarks/memory/results.md")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    rows = []
    for spec in args.exports:
        preset, size = spec.split("@")
        estimate, params = estimate_mib(preset, int(size))
        phases, seconds, error = measure(
            preset, int(size), args.modes, args.calibration
        )
        peak = max(phases.values()) if phases else None
        rows.append(
            {
                "preset": preset,
                "size": int(size),
                "modes": args.modes,
                "params": params,
                "estimate_mib": estimate,
                "peak_mib": peak,
                "phases_mib": phases,
                "seconds": round(seconds, 1),
                "error": error,
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr)
    table = [
        "| preset | size | modes | params | estimate MiB | measured peak "
        "MiB | peak phase | s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        phases = row["phases_mib"] or {}
        worst = max(phases, key=phases.get) if phases else row["error"]
        table.append(
            f"| {row['preset']} | {row['size']} | {row['modes']} | "
            f"{row['params'] / 1e6:.1f} M | {row['estimate_mib']} | "
            f"{row['peak_mib']} | {worst} | {row['seconds']} |"
        )
    with open(args.out, "w") as f:
        f.write("\n".join(table) + "\n")
    with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
        json.dump(rows, f, indent=2)
        f.write("\n")
    print("\n".join(table))


if __name__ == "__main__":
    main()
