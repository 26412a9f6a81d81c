"""Peak memory of an export, phase by phase, against the up-front estimate.

    python -m benchmarks.memory.measure sam_vit_huge@1024 \
        --modes "" --targets cpu --calibration /tmp/calib4 --out /tmp/huge.md

Each export runs in its own process (`edge-backbones export
--random-weights`), whose stderr carries the peak resident memory of each
phase (`exporter.memory.PhaseMeter`: model build, float reference,
SavedModel trace, calibration images, each mode's conversion and
verification; a conversion in a child process counts both processes).
The table puts the highest of them beside the export's own estimate
(`exporter.memory.phase_bytes`, logged for the structure it chose: one
process, or child conversions), and the seconds of each phase. Without
`--calibration` the export verifies on 4 synthetic images, as a plain
`export` does; a folder of 4 photos holds one out (the default
`holdout_fraction`), so the float reference and the verification run on
one photo, a quarter of the time at 1024. Each export's log is written
as it runs to `<out>.<preset>@<size>.log`; an export that does not finish
still reports the phases it got through. `EDGE_BACKBONES_MAX_MEMORY_GIB`
caps what an export may use (it splits itself or refuses by that figure).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

_MARK = "memory: peak RSS MiB per phase "
_ESTIMATE = "memory: estimated MiB per phase "
_ISOLATED = "memory: converting in child processes"
# one phase as it ends: "memory: NAME: peak RSS N MiB, T s"
_PHASE = re.compile(r"^memory: (.+): peak RSS (\d+) MiB, ([\d.]+) s$")
_CHILD = re.compile(
    r"^memory: (.+): child process peak RSS \d+ MiB, "
    r"with this process (\d+) MiB$"
)


def phases_so_far(lines):
    """({phase: peak MiB}, {phase: seconds}) of the phases that ended, as
    the export logged them: what an unfinished run got through."""
    peaks, seconds = {}, {}
    for line in lines:
        if match := _PHASE.match(line):
            name = match[1]
            peaks[name] = max(int(match[2]), peaks.get(name, 0))
            seconds[name] = seconds.get(name, 0.0) + float(match[3])
        elif match := _CHILD.match(line):
            peaks[match[1]] = max(int(match[2]), peaks.get(match[1], 0))
    return peaks, seconds


def measure(preset, size, modes, targets, calibration, log_path):
    """({phase: peak MiB}, {phase: seconds}, {phase: estimated MiB},
    isolated, seconds, error) of one export in a child whose stderr is
    written to `log_path` as it runs."""
    with tempfile.TemporaryDirectory() as out, open(log_path, "w") as log:
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
                *(["--modes", modes] if modes else []),
                *(["--target", targets] if targets else []),
                "--out",
                out,
                *(["--calibration", calibration] if calibration else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
            check=False,
        )
        seconds = time.perf_counter() - started
    with open(log_path) as f:
        err = f.read().splitlines()
    # the export's own estimate, for the structure it chose
    estimates = [x for x in err if x.startswith(_ESTIMATE)]
    estimate = json.loads(estimates[-1][len(_ESTIMATE) :]) if estimates else {}
    isolated = any(x.startswith(_ISOLATED) for x in err)
    phases, phase_seconds = phases_so_far(err)
    error = None
    if proc.returncode or not any(x.startswith(_MARK) for x in err):
        error = f"exit {proc.returncode}: {' '.join(err[-3:])}"
    return phases, phase_seconds, estimate, isolated, seconds, error


def count_params(preset):
    """The preset's parameter count, built small (the count hardly
    depends on the size: ViTDet's position table is a few M)."""
    from edge_backbones.models.backbone import Backbone

    backbone = Backbone.from_preset(
        preset, load_weights=False, image_shape=(64, 64, 3)
    )
    return int(backbone.count_params())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("exports", nargs="+", help="PRESET@SIZE")
    parser.add_argument("--modes", default="fp32")
    parser.add_argument("--targets", default="")
    # none: 4 synthetic held-out images, as a plain `export` verifies on
    parser.add_argument("--calibration", default="")
    parser.add_argument("--out", default="benchmarks/memory/results.md")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    rows = []
    for spec in args.exports:
        preset, size = spec.split("@")
        log_path = f"{os.path.splitext(args.out)[0]}.{preset}@{size}.log"
        phases, phase_seconds, estimate, isolated, seconds, error = measure(
            preset,
            int(size),
            args.modes,
            args.targets,
            args.calibration,
            log_path,
        )
        peak = max(phases.values()) if phases else None
        rows.append(
            {
                "preset": preset,
                "size": int(size),
                "modes": ",".join(x for x in (args.modes, args.targets) if x),
                "params": count_params(preset),
                "isolated": isolated,
                "estimate_mib": max(estimate.values()) if estimate else None,
                "estimate_phases_mib": estimate,
                "peak_mib": peak,
                "phases_mib": phases,
                "phases_seconds": phase_seconds,
                "seconds": round(seconds, 1),
                "error": error,
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr)
    table = [
        "| preset | size | modes | params | child conversion | estimate "
        "MiB | measured peak MiB | peak phase | s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        phases = row["phases_mib"] or {}
        worst = max(phases, key=phases.get) if phases else "-"
        if row["error"]:
            worst += f" (unfinished: {row['error'][:60]})"
        table.append(
            f"| {row['preset']} | {row['size']} | {row['modes']} | "
            f"{row['params'] / 1e6:.1f} M | "
            f"{'yes' if row['isolated'] else 'no'} | {row['estimate_mib']} | "
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
