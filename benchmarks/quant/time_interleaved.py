"""Latency of .tflite files against the first, timed interleaved in one
process (XNNPACK), with whether XNNPACK ran each whole and the CPU record
(`lscpu`, flags, load average), written as strict JSON.

python benchmarks/quant/time_interleaved.py OUT.json BASELINE.tflite X.tflite...
    [--rounds 20] [--runs 20] [--threads 2]

Each model's latency is the median of its round medians; on a shared
machine use many short rounds, so load swings hit every model alike.
"""

import argparse
import sys

from benchmarks.peers.measure import cpu_record, graph_record, time_interleaved
from edge_backbones.atomic_io import dumps_json, write_file_atomic


def main(out, paths, threads, rounds, runs, warmup=3):
    graphs = {path: graph_record(path, threads) for path in paths}
    times = time_interleaved(
        paths,
        threads,
        rounds,
        runs,
        warmup,
        log=lambda line: print(line, file=sys.stderr),
    )
    base = times[paths[0]]["median_ms"]
    rows = []
    for path in paths:
        ratio = times[path]["median_ms"] / base
        rows.append(
            {"model": path, "ratio": ratio, **times[path], **graphs[path]}
        )
        print(
            f"{ratio:6.3f}x  {times[path]['median_ms']:8.1f} ms  "
            f"whole on XNNPACK: {graphs[path]['whole_graph_on_xnnpack']}"
            f"  {path}"
        )
    record = {"cpu": cpu_record(), "rounds": rounds, "runs": runs}
    write_file_atomic(out, dumps_json({**record, "rows": rows}, indent=1))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    main(args.out, args.paths, args.threads, args.rounds, args.runs)
