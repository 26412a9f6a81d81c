"""The report's deployment rows for compiled artifacts (no extra needed)."""

from edge_backbones.report.deployment import (
    deployment_fields,
    deployment_table,
)
from edge_backbones.report.merge import merge_results

COMPILED = {
    "soc": "SM8650",
    "accelerator": "QNN HTP",
    "x86_run": "simulator",
    "partitions": [
        {"subgraph": 0, "ops_on_npu": 380, "ops_total": 386, "partitions": 2}
    ],
    "cpu_op_kinds": {"GELU": 6},
}


def _row(mode, median, cosine, sha, deployment=None, delegate="xnnpack"):
    latency = dict.fromkeys(("p5", "p95", "mean", "std"), median)
    return {
        "run_id": "r1",
        "kind": "tflite",
        "model": {"name": "mit_b0"},
        "mode": mode,
        "input": {"shape": [1, 128, 128, 3], "dtype": "int8"},
        "artifact": {"sha256": sha},
        "threads": 2,
        "latency_ms": {**latency, "median": median, "runs": 3},
        "fidelity": {"levels": {"P1": {"cosine": cosine}}},
        "delegate": delegate,
        "fully_delegated": True,
        "cpu_ops": {},
        "deployment": deployment,
    }


def _merged(rows):
    result = {"device": {"name": "vm"}, "runs": [], "rows": rows}
    return merge_results([result], min_cos=0.99)


def test_a_simulated_row_is_never_the_fastest():
    simulated = _row("npu@SM8650", 1.0, 0.995, "b",
                     deployment_fields({"compiled": COMPILED}),
                     delegate="qnn-htp-simulator")  # fmt: skip
    rows = _merged([_row("npu", 50.0, 0.995, "a"), simulated])["rows"]
    assert [r["best"] for r in rows] == [True, False]


def test_the_table_shows_partial_offload_and_its_op_kinds():
    deployment = deployment_fields({"compiled": COMPILED})
    rows = _merged([
        _row("npu", 50.0, 0.995, "a"),
        _row("npu@SM8650", 1.0, 0.994, "b", deployment,
             delegate="qnn-htp-simulator"),
    ])["rows"]  # fmt: skip
    _, body = deployment_table(rows)
    assert body[0][3:6] == ["XNNPACK", "yes", "none"]
    assert body[1][3] == "QNN HTP simulated for SM8650"
    assert body[1][4] == "no (380/386 ops, 2 partition(s))"
    assert body[1][5] == "GELU 6"


def test_openvino_cpu_is_timed_for_real():
    native = deployment_fields(
        {"compiled": {**COMPILED, "x86_run": "native", "soc": "intel-cpu"}}
    )
    assert native["simulated"] is False
