"""Latency of .tflite files against the first, timed interleaved in one
process (XNNPACK), with whether XNNPACK ran each whole and the CPU record.

python benchmarks/quant/time_interleaved.py OUT.json BASELINE.tflite X.tflite...
"""

import sys

from benchmarks.peers.measure import cpu_record, graph_record, time_interleaved
from edge_backbones.atomic_io import dumps_json, write_file_atomic


def main(out, paths, threads=2, rounds=5, runs=10, warmup=3):
    graphs = {path: graph_record(path, threads) for path in paths}
    times = time_interleaved(
        paths,
        threads,
        rounds,
        runs,
        warmup,
        log=lambda x: print(x, file=sys.stderr),
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
    write_file_atomic(
        out, dumps_json({"cpu": cpu_record(), "rows": rows}, indent=1)
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
