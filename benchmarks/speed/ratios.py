"""Latency ratios to the first .tflite and the physical-limit table: for
each thread count, every model timed in interleaved rounds in this one
process (`benchmarks.peers.measure.time_interleaved`), its MACs, GMAC/s
and share of this CPU's fp32 and int8 peak (`core.peak`), written as
strict JSON with the CPU record (flags, clock, load average before and
after).

python -m benchmarks.speed.ratios OUT.json BASELINE.tflite X.tflite...
    [--threads 1,2] [--rounds 10] [--runs 10]
"""

import argparse
import os
import sys

from benchmarks.peers.measure import graph_record, time_interleaved
from edge_backbones.atomic_io import dumps_json, write_file_atomic
from edge_backbones.core.cpuinfo import cpu_record
from edge_backbones.runtime.bench import physical_limit
from edge_backbones.runtime.cli import thread_counts


def _load():
    return [round(v, 2) for v in os.getloadavg()]


def measure(paths, threads, rounds, runs, warmup=3):
    """{threads, load_before, load_after, rows}: one interleaved run."""
    before = _load()
    times = time_interleaved(
        paths,
        threads,
        rounds,
        runs,
        warmup,
        log=lambda line: print(line, file=sys.stderr),
    )
    after = _load()
    base = times[paths[0]]["median_ms"]
    rows = []
    for path in paths:
        median = times[path]["median_ms"]
        rows.append(
            {
                "model": path,
                "ratio": median / base,
                **times[path],
                "silicon": physical_limit(path, median / 1e3, threads),
                **graph_record(path, threads),
            }
        )
    return {
        "threads": threads,
        "load_before": before,
        "load_after": after,
        "rows": rows,
    }


def format_rows(run):
    lines = [
        f"threads={run['threads']}  load average before {run['load_before']}"
        f" after {run['load_after']}",
        f"{'ratio':>6} {'ms':>8} {'GMAC':>6} {'GMAC/s':>7} {'fp32 pk':>8} "
        f"{'int8 pk':>8}  model",
    ]
    for row in run["rows"]:
        s = row["silicon"]
        fp32, int8 = s["fp32_peak_share"], s["int8_peak_share"]
        lines.append(
            f"{row['ratio']:6.3f} {row['median_ms']:8.1f} "
            f"{s['macs'] / 1e9:6.2f} {s['gmac_per_s']:7.1f} "
            f"{'?' if fp32 is None else f'{fp32:.0%}':>8} "
            f"{'?' if int8 is None else f'{int8:.0%}':>8}  "
            f"{os.path.basename(row['model'])}"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--threads", type=thread_counts, default=[1, 2])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args(argv)
    runs = []
    for threads in args.threads:
        run = measure(args.paths, threads, args.rounds, args.runs)
        print(format_rows(run), flush=True)
        runs.append(run)
    record = {
        "cpu": cpu_record(),
        "rounds": args.rounds,
        "runs_per_round": args.runs,
    }
    write_file_atomic(
        args.out, dumps_json({**record, "measurements": runs}, indent=1)
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
