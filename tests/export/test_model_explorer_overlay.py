"""--layer-report's Model Explorer node-data overlay (beside the CSV)."""

import csv

import pytest

from edge_backbones.atomic_io import loads_json_strict
from edge_backbones.exporter.pipeline import export
from edge_backbones.exporter.quant_debug import node_data, op_outputs

SIZE = (32, 48)
STEM = "tiny_backbone_32x48_layers"


@pytest.fixture(scope="module")
def reported(tiny_backbone, photos, tmp_path_factory):
    out = tmp_path_factory.mktemp("overlay")
    (record,) = export(
        tiny_backbone,
        image_size=SIZE,
        modes="int8",
        calibration=photos,
        out=out,
        layer_report=True,
        thresholds={"int8": 0.95},
    )
    overlay = loads_json_strict(
        (out / f"{STEM}.model_explorer.json").read_text()
    )
    with open(out / f"{STEM}.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {"path": record.path, "overlay": overlay, "rows": rows}


@pytest.mark.explorer_stage
def test_overlay_paints_every_reported_op_of_the_exported_model(reported):
    overlay = reported["overlay"]
    with open(reported["path"], "rb") as handle:
        outputs = {tensor for _, tensor in op_outputs(handle.read())}
    worst = {}
    for row in reported["rows"]:
        value = float(row["rmse/scale"])
        worst[row["tensor_name"]] = max(value, worst.get(row["tensor_name"], 0))
    results = overlay["results"]
    # every key is an op output of the artifact (Model Explorer's match)
    assert results and set(results) <= outputs
    assert set(results) == set(worst)
    for name, result in results.items():
        assert result == {"value": pytest.approx(worst[name])}
    stops = [item["stop"] for item in overlay["gradient"]]
    assert stops[0] == 0 and stops[-1] == 1 and stops == sorted(stops)


def test_a_tensor_reported_twice_keeps_its_worst_value():
    rows = [
        {"tensor_name": "a", "rmse/scale": 0.3},
        {"tensor_name": "a", "rmse/scale": 2.0},
        {"tensor_name": "b", "rmse/scale": float("nan")},
    ]
    assert node_data(rows)["results"] == {"a": {"value": 2.0}}


@pytest.mark.explorer_stage
def test_model_explorer_reads_the_overlay_onto_the_graph(reported):
    """With ai-edge-model-explorer installed (CI stage model_explorer.sh):
    its own GraphNodeData class loads the JSON strictly, and its
    TFLite adapter's nodes carry the tensor names the overlay keys."""
    builder = pytest.importorskip(
        "model_explorer.node_data_builder",
        reason="ai-edge-model-explorer not installed; "
        ".ci/stages/model_explorer.sh installs it and runs this test",
    )
    import dacite
    from model_explorer.builtin_tflite_flatbuffer_adapter import (
        BuiltinTfliteFlatbufferAdapter,
    )

    overlay = reported["overlay"]
    # strict: a field GraphNodeData does not have, or a wrong type, raises
    data = dacite.from_dict(
        builder.GraphNodeData, overlay, config=dacite.Config(strict=True)
    )
    rebuilt = loads_json_strict(data.to_json_string())
    assert {key: rebuilt[key] for key in overlay} == overlay
    graphs = BuiltinTfliteFlatbufferAdapter().convert(reported["path"], {})
    (collection,) = graphs["graphCollections"]
    names = {
        attr["value"]
        for graph in collection.graphs
        for node in graph["nodes"]
        for output in node.get("outputsMetadata", [])
        for attr in output["attrs"]
        if attr["key"] == "tensor_name"
    }
    assert set(overlay["results"]) <= names
