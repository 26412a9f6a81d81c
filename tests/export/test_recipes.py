"""Recipe files and mode/target resolution."""

import os

import pytest

from edge_backbones.core import modes
from edge_backbones.core.cpuinfo import cpu_flags
from edge_backbones.errors import InputError
from edge_backbones.exporter import recipes


def test_resolve_plans():
    plans = recipes.resolve_plans("fp32,int8", ["cpu"])
    assert [p.mode for p in plans] == ["fp32", "int8", "cpu"]
    # cpu (dynamic int8 or fp16 weights): no calibration photos needed
    assert [p.needs_calibration for p in plans] == [False, True, False]
    assert recipes.resolve_plans(["npu"], "npu")[0].integer_io
    with pytest.raises(InputError, match="int4"):
        recipes.resolve_plans("int4", ())
    with pytest.raises(InputError, match="Nothing to export"):
        recipes.resolve_plans((), ())


@pytest.mark.parametrize(
    "flags, base, named",
    [
        ({"avx2", "fma", "avx512_vnni"}, "dynamic", "avx512_vnni"),
        ({"avx2", "avx_vnni"}, "dynamic", "avx_vnni"),
        ({"fp", "asimd", "asimddp"}, "dynamic", "asimddp"),  # Cortex-A76
        ({"avx2", "fma", "f16c"}, "fp16", "none"),  # AVX2-only EPYC
        ({"avx2", "fma", "avx512f", "avx512bw"}, "fp16", "none"),  # no VNNI
        ({"avx512f", "avx512_vnni", "amx_int8"}, "dynamic", "amx_int8"),
        ({"fp", "asimd", "asimddp", "i8mm"}, "dynamic", "asimddp"),
        ({"fp", "asimd"}, "fp16", "none"),  # Cortex-A72
    ],
)
def test_cpu_target_follows_the_int8_dot_product(flags, base, named):
    plan = modes.cpu_plan(flags)
    assert (plan.mode, plan.target, plan.converter) == ("cpu", "cpu", base)
    assert f"flags include {named}" in plan.reason
    # fp16 weights keep every op's weights as they are
    assert plan.float_weight_ops == (
        ("DEPTHWISE_CONV_2D",) if base == "dynamic" else ()
    )


@pytest.mark.parametrize(
    "flags, converter",
    [("avx2 fma f16c", "fp16"), ("avx2 fma avx512f avx512_vnni", "dynamic")],
)
def test_cpu_target_reads_the_flags_override(monkeypatch, flags, converter):
    # EDGE_BACKBONES_CPU_FLAGS emulates another CPU for the choice
    monkeypatch.setenv("EDGE_BACKBONES_CPU_FLAGS", flags)
    (plan,) = recipes.resolve_plans((), "cpu")
    assert plan.converter == converter


def test_cpu_flags_reads_x86_and_arm_cpuinfo(tmp_path):
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_vnni\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd asimddp\n")
    assert cpu_flags(x86) == {"fpu", "avx2", "avx512_vnni"}
    assert cpu_flags(arm) == {"fp", "asimd", "asimddp"}
    assert cpu_flags(tmp_path / "missing") is None


def test_cpu_target_without_cpuinfo_is_fp16(monkeypatch):
    monkeypatch.setattr(modes, "cpu_flags", lambda: None)
    (plan,) = recipes.resolve_plans((), "cpu")
    assert plan.converter == "fp16"
    assert "unknown" in plan.reason


def test_recipe_paths_are_relative_to_the_file(tmp_path):
    (tmp_path / "sub").mkdir()
    recipe = tmp_path / "sub" / "r.toml"
    recipe.write_text(
        '[model]\npreset = "mit_b0"\nrandom_weights = true\n'
        "image_size = [64, 96]\n"
        '[export]\nmodes = ["int8"]\ntargets = ["cpu"]\nout = "../out"\n'
        '[calibration]\nsource = "../photos"\nmax_images = 4\n'
        "[thresholds]\ncpu = 0.99\n"
    )
    kwargs = recipes.load_recipe(str(recipe))
    assert kwargs == {
        "model": "mit_b0",
        "random_weights": True,
        "image_size": [64, 96],
        "modes": ["int8"],
        "targets": ["cpu"],
        "out": os.path.join(str(tmp_path), "out"),
        "calibration": os.path.join(str(tmp_path), "photos"),
        "max_images": 4,
        "thresholds": {"cpu": 0.99},
    }


def test_several_models_share_the_sections(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        '[export]\nmodes = ["fp32"]\n'
        '[[model]]\npreset = "mit_b0"\n'
        '[[model]]\npreset = "sam_vit_base"\nname = "small"\n'
        "random_weights = true\nconfig = { num_layers = 2 }\n"
    )
    first, second = recipes.load_recipes(str(recipe))
    assert first == {"model": "mit_b0", "modes": ["fp32"]}
    assert second == {
        "model": "sam_vit_base",
        "name": "small",
        "random_weights": True,
        "config": {"num_layers": 2},
        "modes": ["fp32"],
    }
    with pytest.raises(InputError, match="load_recipes"):
        recipes.load_recipe(str(recipe))


def test_recipe_typos_are_errors(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('[model]\npreset = "mit_b0"\n[export]\nmode = ["x"]\n')
    with pytest.raises(InputError, match="mode"):
        recipes.load_recipe(str(recipe))


def test_shipped_recipes_load(repo_root):
    folder = repo_root / "export"
    files = sorted(folder.glob("*.toml"))
    assert files, "export/ ships at least one recipe"
    for path in files:
        for kwargs in recipes.load_recipes(str(path)):
            assert kwargs["model"]
            recipes.resolve_plans(
                kwargs.get("modes", ()), kwargs.get("targets")
            )


@pytest.mark.parametrize(
    "text",
    [
        'model = "mit_b0"\n',  # a string where a table belongs
        "model = []\n",  # no model at all
        '[[export]]\nmodes = ["fp32"]\n[model]\npreset = "mit_b0"\n',
    ],
)
def test_sections_that_are_not_tables_are_errors(tmp_path, text):
    recipe = tmp_path / "r.toml"
    recipe.write_text(text)
    with pytest.raises(InputError, match="must be a table"):
        recipes.load_recipes(str(recipe))


def test_checkpoint_folder_beside_the_recipe_wins_over_cwd(
    tmp_path, monkeypatch
):
    (tmp_path / "recipes" / "ckpt").mkdir(parents=True)
    (tmp_path / "elsewhere" / "ckpt").mkdir(parents=True)
    recipe = tmp_path / "recipes" / "r.toml"
    recipe.write_text('[model]\npreset = "ckpt"\n')
    # run from a folder that happens to hold a folder of the same name
    monkeypatch.chdir(tmp_path / "elsewhere")
    kwargs = recipes.load_recipe(str(recipe))
    assert kwargs["model"] == str(tmp_path / "recipes" / "ckpt")
