"""The mode registry (core/modes.toml) drives every list of modes."""

import dataclasses
import re

import pytest

from edge_backbones.cli import build_parser
from edge_backbones.core import modes
from edge_backbones.errors import ExportError, InputError, UnknownOptionError
from edge_backbones.exporter import options, verify
from edge_backbones.exporter.pipeline import export, plan_export
from edge_backbones.report import collect

# a copy of the shipped registry plus one mode, placed (in report order)
# between fp16 and gpu, with its own gate, and made a min_cos candidate
EXTRA = """
[aliases.wf16_extra]
kind = "mode"
scheme = "wf16"
description = "float16 weights, a second name"
min_cosine = 0.9876
"""


@pytest.fixture
def extended(tmp_path, monkeypatch):
    text = open(modes.REGISTRY_PATH).read()
    # insert the new alias right after [aliases.fp16]'s two lines
    text = text.replace(
        '[aliases.fp16]\nkind = "mode"\nscheme = "wf16"\n',
        '[aliases.fp16]\nkind = "mode"\nscheme = "wf16"\n' + EXTRA,
    )
    text = text.replace('"int8_mixed", "cpu"]', '"int8_mixed", "cpu", '
                        '"wf16_extra"]')  # fmt: skip
    path = tmp_path / "modes.toml"
    path.write_text(text)
    registry = modes.load_registry(str(path))
    monkeypatch.setattr(modes, "registry", lambda: registry)
    return registry


def test_a_new_entry_appears_in_every_list(extended, capsys):
    assert "wf16_extra" in modes.mode_plans()
    assert modes.default_min_cosine()["wf16_extra"] == 0.9876
    assert modes.selection_candidates()[-1] == "wf16_extra"
    (plan,) = modes.resolve_plans("wf16_extra", ())
    assert (plan.scheme, plan.converter) == ("wf16", "fp16")
    # the CLI's help lists it
    with pytest.raises(SystemExit):
        build_parser().parse_args(["export", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert re.search(r"Any of [\w,]*\bwf16_extra\b", help_text)

    # the report orders rows by the registry: after fp16, before gpu
    def artifact(mode):
        return {
            "metadata": {
                "mode": mode,
                "model": {"name": "m"},
                "input": {"shape": [1, 8, 8, 3]},
            }
        }

    rows = ["gpu", "wf16_extra", "fp16", "fp32", "int8_mixed", "npu"]
    ordered = sorted((artifact(m) for m in rows), key=collect._order)
    assert [a["metadata"]["mode"] for a in ordered] == [
        "fp32", "fp16", "wf16_extra", "gpu", "int8_mixed", "npu"
    ]  # fmt: skip


def test_a_new_entry_is_selected_and_gated(
    extended, tiny_backbone, photos, tmp_path
):
    job = options.job(
        {"model": tiny_backbone, "image_size": 32, "out": str(tmp_path)}
    )
    # min_cos without modes: the candidates are the registry's `select`
    plan = plan_export(job.replace(min_cos=0.9, calibration=str(photos)))
    assert [p.mode for p in plan.plans] == [
        "fp32", "fp16", "int8", "int8_mixed", "cpu", "wf16_extra"
    ]  # fmt: skip
    assert plan.gates["wf16_extra"] == 0.9876
    # a threshold may name it, and no unknown name
    plan_export(job.replace(modes="fp32", thresholds={"wf16_extra": 0.9}))
    with pytest.raises(InputError, match="wf16_extrb"):
        plan_export(job.replace(modes="fp32", thresholds={"wf16_extrb": 0.9}))


def test_every_mode_of_the_readme_table_has_the_registry_gate(repo_root):
    # export/README.md's "Modes and targets" table is the documentation of
    # the registry: same names, same default gates
    text = (repo_root / "export" / "README.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| .* \| ([0-9.]+) \|$", text, re.M)
    documented = {name: float(gate) for name, gate in rows}
    assert (
        documented == verify.DEFAULT_MIN_COSINE == (modes.default_min_cosine())
    )


def test_registry_names_schemes_by_numerics():
    registry = modes.registry()
    # the user-facing names resolve to numerics-named schemes
    assert modes.resolve_plans("int8", ())[0].scheme == "wi8_ai8"
    assert modes.resolve_plans("int16x8", ())[0].scheme == "wi8_ai16"
    assert modes.resolve_plans("dynamic", ())[0].scheme == "wi8_afp32"
    # npu is a16w8 with integer I/O and grouped depthwise convolutions
    npu = registry.aliases["npu"]
    assert npu.scheme == "wi8_ai16_io16" and npu.integer_io
    assert npu.converter == "int16x8" and npu.grouped_depthwise
    # npu_int8 keeps int8 SOFTMAX (QNN's HTP leaves int8 EXP on the CPU);
    # int8 / int8_io trace softmax in integer form
    npu_int8 = registry.aliases["npu_int8"]
    assert npu_int8.scheme == "wi8_ai8_io8_softmax8"
    assert not npu_int8.integer_softmax and not npu_int8.grouped_depthwise
    assert registry.aliases["int8_io"].integer_softmax
    for target in (npu, npu_int8):
        assert target.forbid_float_tensors and target.forbid_float_handoffs
    assert registry.aliases["gpu"].require_gpu_compatible
    # int8_mixed keeps the layer norms (every op in them) float
    mixed = registry.aliases["int8_mixed"]
    assert "LayerNormalization" in mixed.float_layer_types
    assert modes.FAST_INT8_CPU_FLAGS == modes.fast_int8_cpu_flags()
    assert "avx512_vnni" in modes.FAST_INT8_CPU_FLAGS


@pytest.mark.parametrize(
    "edit, named",
    [
        (("converter = \"fp16\"", "converter = \"fp8\""), "converter"),
        (("scheme = \"wi8_ai16\"", "scheme = \"wi4\""), "wi4"),
        (("io = \"integer\"", "io = \"int4\""), "io"),
        (("min_cosine = 0.98\n", "min_cosine = 0.98\nfloat_opz = []\n"),
         "float_opz"),
        (('kind = "target"\nmin_cosine', 'kind = "device"\nmin_cosine'),
         "kind"),
        (("min_cosine = 0.9999", "min_cosine = 1.5"), "min_cosine"),
    ],
)  # fmt: skip
def test_a_broken_registry_is_a_clear_error(tmp_path, edit, named):
    text = open(modes.REGISTRY_PATH).read()
    assert edit[0] in text
    path = tmp_path / "modes.toml"
    path.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(ExportError, match=named):
        modes.load_registry(str(path))


def test_an_unknown_option_names_the_fix(tiny_backbone, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(UnknownOptionError, match="did you mean 'modes'"):
        export(tiny_backbone, modez="fp32", out=str(out))
    # typed both ways: ours, and Python's own for an unknown keyword
    with pytest.raises(TypeError, match="'image_sise'.*'image_size'"):
        export(tiny_backbone, image_sise=32, out=str(out))
    assert not out.exists(), "nothing is done before the options are checked"
    with pytest.raises(UnknownOptionError, match="no close match|known"):
        export(tiny_backbone, zzz=1)


def test_the_signature_lists_every_option():
    import inspect

    import edge_backbones

    parameters = inspect.signature(export).parameters
    assert list(parameters) == list(options.OPTIONS)
    # every option lands in exactly one group of the job
    groups = [options.ModelOptions, options.ExportOptions,
              options.CalibrationOptions]  # fmt: skip
    fields = [f.name for g in groups for f in dataclasses.fields(g)]
    assert sorted([*fields, "thresholds"]) == sorted(options.OPTIONS)
    # None: the preset's natural size (test_natural_size)
    assert parameters["image_size"].default is None
    # the package attribute stays callable after a submodule import
    import edge_backbones.core.modes  # noqa: F401

    assert callable(edge_backbones.export)


def test_toml_job_and_keywords_map_onto_the_same_options(tmp_path):
    from edge_backbones.exporter import recipes

    recipe = tmp_path / "r.toml"
    recipe.write_text(
        '[model]\npreset = "mit_b0"\nimage_size = 64\n'
        '[export]\nmodes = ["int8"]\nout = "o"\n'
        '[calibration]\nsource = "p"\nmax_images = 4\n'
        "[thresholds]\nint8 = 0.97\n"
    )
    (job,) = recipes.load_jobs(str(recipe))
    assert job == options.job(
        {
            "model": "mit_b0",
            "image_size": 64,
            "modes": ["int8"],
            "out": str(tmp_path / "o"),
            "calibration": str(tmp_path / "p"),
            "max_images": 4,
            "thresholds": {"int8": 0.97},
        }
    )
    assert job.calibration.max_images == 4 and job.export.modes == ["int8"]
    recipe.write_text('[model]\npreset = "mit_b0"\n[export]\nmodez = 1\n')
    with pytest.raises(UnknownOptionError, match="did you mean 'modes'"):
        recipes.load_jobs(str(recipe))
