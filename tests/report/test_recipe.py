"""`report --recipe`: export, then time with the Keras float baseline."""

import pytest

from edge_backbones.errors import InputError
from edge_backbones.report import collect
from edge_backbones.report.merge import load_and_merge
from edge_backbones.report.recipe import load_exports
from edge_backbones.report.records import load_results
from tests.tiny import TINY_MIT_64


def _toml_value(value):
    if isinstance(value, list):
        return "[" + ", ".join(map(_toml_value, value)) + "]"
    return repr(value) if isinstance(value, str) else str(value)


def _write_recipe(folder, config=TINY_MIT_64, random_weights=True):
    inline = ", ".join(f"{k} = {_toml_value(v)}" for k, v in config.items())
    recipe = folder / "tiny_report.toml"
    recipe.write_text(
        "[export]\n"
        'modes = ["dynamic"]\n'
        'out = "exported"\n'
        "[[model]]\n"
        'preset = "mit_b0"\n'
        'name = "mit_tiny"\n'
        f"random_weights = {str(random_weights).lower()}\n"
        "image_size = [64, 64]\n"
        f"config = {{ {inline} }}\n"
    )
    return recipe


@pytest.mark.matrix_stage
def test_recipe_report_times_keras_baseline_and_resumes(tmp_path, capfd):
    recipe = _write_recipe(tmp_path)
    out = tmp_path / "report"
    args = (str(recipe), str(out), "laptop")
    path = collect.collect_recipe(*args, threads=(1,), runs=3, warmup=1)
    results = load_results(path)
    by_mode = {row["mode"]: row for row in results["rows"]}
    # fp32 is added to the recipe's modes: it is the report's baseline
    assert sorted(by_mode) == ["dynamic", "fp32", "keras"]
    keras, fp32 = by_mode["keras"], by_mode["fp32"]
    assert keras["kind"] == "keras" and keras["fidelity"] is None
    assert keras["backend"].startswith("tensorflow")
    assert keras["input"]["shape"] == fp32["input"]["shape"] == [1, 64, 64, 3]
    assert keras["model"]["weights"] == "random"
    assert (tmp_path / "exported" / "mit_tiny_64x64_dynamic.tflite").is_file()

    merged = load_and_merge([path])
    derived = {row["mode"]: row for row in merged["rows"]}
    keras_ms = keras["latency_ms"]["median"]
    for mode in ("fp32", "dynamic"):
        median = by_mode[mode]["latency_ms"]["median"]
        assert derived[mode]["speedup_vs_keras"] == pytest.approx(
            keras_ms / median
        )

    capfd.readouterr()
    collect.collect_recipe(*args, threads=(1,), runs=3, warmup=1, resume=True)
    assert "exported by an earlier run, reused" in capfd.readouterr().err
    again = load_results(path)
    assert again["rows"] == results["rows"] and len(again["runs"]) == 2


def test_recipe_with_new_architecture_must_say_random_weights(tmp_path):
    recipe = _write_recipe(tmp_path, random_weights=False)
    with pytest.raises(InputError, match="random_weights = true"):
        load_exports(str(recipe), str(tmp_path))


def test_recipe_rejects_unknown_keys(tmp_path):
    recipe = tmp_path / "bad.toml"
    recipe.write_text('[[model]]\npreset = "mit_b0"\nmodez = ["int8"]\n')
    with pytest.raises(InputError, match=r"unknown key\(s\) \['modez'\]"):
        load_exports(str(recipe), str(tmp_path))


def test_resume_stems_follow_the_export_file_name_rule():
    # what --resume looks for is what export() writes: name, height x
    # width (height first), mode; the layer report drops the mode
    from edge_backbones.exporter.recipes import artifact_stem
    from edge_backbones.report.recipe import expected_stems

    kwargs = {"model": "weights/mit_b0/", "image_size": "384x640"}
    kwargs["modes"] = " fp32, int8"
    assert expected_stems(kwargs) == [
        "mit_b0_384x640_fp32",
        "mit_b0_384x640_int8",
    ]
    assert artifact_stem("mit_b0", (384, 640)) == "mit_b0_384x640"
