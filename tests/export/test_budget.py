"""Per-layer precision against a budget (`exporter.budget`): the search
keeps a seeded bad layer in float, and bad budgets are typed errors."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from edge_backbones.core.artifact import ArtifactMetadata
from edge_backbones.core.cpuinfo import cpu_flags
from edge_backbones.core.fidelity import worst
from edge_backbones.errors import BudgetError, InputError
from edge_backbones.exporter import budget as budget_lib
from edge_backbones.exporter.pipeline import export
from tests.tflite_ops import operators
from tests.tiny import TinyBackbone

BAD_LAYER = "block1/fc2"


@pytest.fixture(scope="module")
def outlier_backbone():
    """The tiny backbone with one bad layer for int8: block1/fc2's first
    input row is 50 for every output, so each output channel's int8 step
    is ~0.4 and its ordinary weights (~0.3) round to 0 or one step; fc1
    feeds that input a constant 0, so the float layer ignores the row."""
    keras.utils.set_random_seed(0)
    backbone = TinyBackbone(dim=8, name="outlier_backbone")
    block = backbone.get_layer("block1")
    kernel, bias = block.fc1.get_weights()
    kernel[:, 0], bias[0] = 0.0, 0.0
    block.fc1.set_weights([kernel, bias])
    kernel, bias = block.fc2.get_weights()
    kernel[0, :] = 50.0
    block.fc2.set_weights([kernel, bias])
    return backbone


@pytest.fixture(scope="module")
def searched(outlier_backbone, photos, tmp_path_factory):
    out = tmp_path_factory.mktemp("budget")
    (record,) = export(
        outlier_backbone,
        image_size=32,
        calibration=photos,
        out=out,
        budget="min_cos=0.995",
        bench_runs=5,
    )
    return record, out


def test_the_seeded_bad_layer_is_the_one_kept_float(searched):
    record, out = searched
    per_layer = record.metadata["scheme"]["per_layer"]
    assert per_layer["float_layers"] == [BAD_LAYER]
    assert per_layer["choices"][BAD_LAYER] == "float32"
    assert sorted(set(per_layer["choices"].values())) == ["float32", "int8"]
    assert worst(record.fidelity)[1]["cosine"] >= 0.995
    # in the graph: its FULLY_CONNECTED is float, the other layers' int8
    fcs = [op for op in operators(record.path) if op.name == "FULLY_CONNECTED"]
    float_fcs = [op.output for op in fcs if op.output_type == "FLOAT32"]
    assert float_fcs == per_layer["float_nodes"]
    assert "fc2" in float_fcs[0] and len(fcs) == 8
    # the typed view reads it back
    meta = ArtifactMetadata.from_dict(record.metadata)
    assert meta.scheme.per_layer.float_layers == [BAD_LAYER]
    # int8_mixed's hand-picked float layers are the search's to choose
    assert record.metadata["scheme"]["float_layer_names"] == []


def test_search_log_is_strict_json_beside_the_artifact(searched):
    record, out = searched
    per_layer = record.metadata["scheme"]["per_layer"]
    text = (out / per_layer["search_log"]).read_text()
    log = json.loads(text, parse_constant=pytest.fail)
    steps = log["steps"]
    assert log["cpu"]["flags"] == sorted(cpu_flags() or ())
    # step 0 is full int8: the bad layer costs most of the cosine
    assert steps[0]["float_layers"] == [] and steps[0]["cosine"] < 0.95
    chosen = steps[log["chosen_step"]]
    assert chosen["float_layers"] == [BAD_LAYER]
    assert chosen["holdout_met"] is True
    assert all(s["ms"] > 0 and s["mb"] > 0 for s in steps)
    # the bad layer buys the most cosine per ms saved: raised first
    assert log["layers"][0]["path"] == BAD_LAYER
    assert log["layers"][0]["cosine_gain"] > 0.1


def test_overlays_paint_error_and_time_on_the_graph(searched):
    record, out = searched
    stem = out / Path(record.path).stem
    error = json.loads(
        Path(f"{stem}.budget_error.model_explorer.json").read_text()
    )
    (bad,) = record.metadata["scheme"]["per_layer"]["float_nodes"]
    assert (
        max(error["results"], key=lambda t: error["results"][t]["value"]) == bad
    )
    timed = json.loads(
        Path(f"{stem}.budget_int8_ms.model_explorer.json").read_text()
    )
    outputs = {op.output for op in operators(record.path)}
    # every op of the int8 graph that the chosen graph shares is timed
    assert bad in timed["results"] and len(timed["results"]) > 20
    assert all(v["value"] >= 0 for v in timed["results"].values())
    assert set(error["results"]) <= outputs


def test_unmeetable_budget_names_the_closest_and_writes_nothing(
    outlier_backbone, photos, tmp_path
):
    # the smallest graph (full int8) is already larger than 1 kB
    with pytest.raises(BudgetError, match=r"closest graph .* cosine") as info:
        export(
            outlier_backbone,
            image_size=32,
            calibration=photos,
            out=tmp_path,
            budget={"min_cos": 0.99, "max_mb": 0.001},
            bench_runs=3,
            max_images=4,
        )
    assert info.value.closest["mb"] > 0.001
    assert "max_mb=0.001" in str(info.value)
    assert [p.name for p in tmp_path.iterdir()] == []


@pytest.mark.parametrize(
    "options, match",
    [
        ({"budget": "min_cos=0.99,min_cos=0.999"}, "contradictory"),
        ({"budget": "min_cos=0.99", "min_cos": 0.99}, "contradictory"),
        (
            {"budget": "min_cos=0.99", "thresholds": {"int8_mixed": 0.9}},
            "contradictory",
        ),
        ({"budget": "min_cos=0.99", "modes": "fp16"}, "no per-layer"),
        ({"budget": "min_cos=0.99", "modes": "fp32"}, "no per-layer"),
        ({"budget": "min_cos=0.99", "modes": "int8,int8_mixed"}, "one mode"),
        ({"budget": "min_kos=0.99"}, "min_cos"),
        ({"budget": "min_cos=1.5"}, "above 1"),
        ({"budget": "max_ms=-1"}, "positive"),
        ({"budget": ""}, "empty"),
    ],
)
def test_bad_budgets_are_input_errors_before_any_work(
    tiny_backbone, tmp_path, options, match
):
    with pytest.raises(InputError, match=match):
        export(tiny_backbone, image_size=32, out=tmp_path, **options)
    assert not list(tmp_path.iterdir())


def _units(*paths):
    return [budget_lib.LayerUnit(p, (p + "/node",)) for p in paths]


def test_greedy_order_and_stop(monkeypatch):
    # layer "b" costs most cosine, "c" a little, "a" nothing: b, then c
    monkeypatch.setattr(budget_lib, "_latency_ms", lambda c, t, r: 1.0)
    monkeypatch.setattr(budget_lib, "_op_ms", lambda c, t, r: {})
    loss = {"a/node": 0.0, "b/node": 0.05, "c/node": 0.01}

    def quantize(nodes):
        return json.dumps(sorted(nodes)).encode()

    def score(content):
        floats = json.loads(content)
        return 1.0 - sum(v for k, v in loss.items() if k not in floats)

    def search(min_cos):
        return budget_lib.search(
            _units("a", "b", "c"), quantize, b"fp32", score, score,
            budget_lib.Budget(min_cos=min_cos), 0.9, 1, 3, lambda line: None,
        )  # fmt: skip

    assert search(0.97).float_layers == ("b",)
    assert search(0.999).float_layers == ("b", "c")
    result = search(0.94)  # full int8 meets it
    assert result.float_layers == () and result.log["chosen_step"] == 0
    with pytest.raises(BudgetError, match="cosine 1.00000") as info:
        search(1.0 + np.finfo(float).eps)  # no cosine passes 1
    # the fewest float layers at the best cosine: "a" adds nothing
    assert info.value.closest["float_layers"] == ["b", "c"]


def test_parse_budget():
    assert budget_lib.parse_budget("min_cos=0.999, max_ms=40") == (
        budget_lib.Budget(min_cos=0.999, max_ms=40.0)
    )
    assert budget_lib.parse_budget({"max_mb": 5}).max_mb == 5.0
    with pytest.raises(InputError, match="KEY=VALUE"):
        budget_lib.parse_budget("0.999")


def test_recipe_takes_a_budget_table(tmp_path):
    from edge_backbones.exporter import recipes

    recipe = tmp_path / "r.toml"
    recipe.write_text(
        '[model]\npreset = "mit_b0"\n'
        "[export]\nbudget = { min_cos = 0.999, max_ms = 40 }\n"
    )
    kwargs = recipes.load_recipe(str(recipe))
    assert budget_lib.parse_budget(kwargs["budget"]) == budget_lib.Budget(
        min_cos=0.999, max_ms=40.0
    )
