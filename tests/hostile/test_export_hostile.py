"""Hostile inputs to export: bad recipes and arguments, killed exports.

Every bad input must end in a typed error whose message names the option
and the value; a killed export must leave the previous artifact pair
byte for byte (the next export into the folder undoes a half-done commit)
and never a partial file at a final path.
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from edge_backbones.core import workspace
from edge_backbones.errors import (
    CheckpointError,
    InputError,
    UnknownPresetError,
)
from edge_backbones.exporter import options, recipes, tflite_metadata
from edge_backbones.exporter.cli import _thresholds
from edge_backbones.exporter.pipeline import export
from edge_backbones.models.backbone import Backbone
from tests.conftest import REPO_ROOT
from tests.tiny import make_metadata, save_tiny_sam_checkpoint

STEM = "tiny_32x32_fp32"

# --- bad recipes: (TOML, the key and value the message must name) -------

BASE = '[model]\npreset = "mit_b0"\n'
BAD_RECIPES = {
    "bool as string": (
        '[model]\npreset = "mit_b0"\nrandom_weights = "no"\n',
        ["random_weights", "'no'", "boolean"],
    ),
    "pixels_in_graph string": (
        BASE + '[export]\npixels_in_graph = "false"\n',
        ["pixels_in_graph", "'false'", "boolean"],
    ),
    "modes number": (BASE + "[export]\nmodes = 5\n", ["modes", "5", "names"]),
    "out number": (BASE + "[export]\nout = 5\n", ["out", "5", "string"]),
    "image_size float": (
        '[model]\npreset = "mit_b0"\nimage_size = 512.5\n',
        ["image_size", "512.5", "image size"],
    ),
    "config number": (
        '[model]\npreset = "x"\nname = "x"\nrandom_weights = true\n'
        "config = 5\n",
        ["config", "5", "table"],
    ),
    "preset number": ("[model]\npreset = 5\n", ["preset", "5", "string"]),
    "allow_flex int": (
        BASE + "[export]\nallow_flex = 1\n",
        ["allow_flex", "1", "boolean"],
    ),
    "num_threads bool": (
        BASE + "[export]\nnum_threads = true\n",
        ["num_threads", "True", "positive integer"],
    ),
    "float_layers numbers": (
        BASE + "[export]\nfloat_layers = [1, 2]\n",
        ["float_layers", "[1, 2]", "names"],
    ),
    "min_cos too high": (
        BASE + "[export]\nmin_cos = 1.5\n",
        ["min_cos", "1.5", "(0, 1]"],
    ),
    "threshold not a cosine": (
        BASE + "[thresholds]\nfp32 = 1.5\n",
        ["fp32", "1.5", "(0, 1]"],
    ),
    "threshold nan": (
        BASE + "[thresholds]\nint8 = nan\n",
        ["int8", "nan", "(0, 1]"],
    ),
    "max_images zero": (
        BASE + "[calibration]\nmax_images = 0\n",
        ["max_images", "0", "positive integer"],
    ),
    "holdout_fraction one": (
        BASE + "[calibration]\nholdout_fraction = 1.0\n",
        ["holdout_fraction", "1.0", "[0, 1)"],
    ),
    "seed negative": (
        BASE + "[calibration]\nseed = -1\n",
        ["seed", "-1", "non-negative"],
    ),
    "source number": (
        BASE + "[calibration]\nsource = 7\n",
        ["source", "7", "string"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_RECIPES))
def test_bad_recipe_is_a_typed_error(case, tmp_path):
    text, named = BAD_RECIPES[case]
    recipe = tmp_path / "r.toml"
    recipe.write_text(text)
    with pytest.raises(InputError) as error:
        recipes.load_recipes(str(recipe))
    message = str(error.value)
    assert "r.toml" in message
    for part in named:
        assert part in message, (part, message)


def test_bad_recipe_on_the_command_line(tmp_path, capsys):
    from edge_backbones.cli import main

    recipe = tmp_path / "r.toml"
    recipe.write_text(BAD_RECIPES["pixels_in_graph string"][0])
    assert main(["export", "--recipe", str(recipe)]) == 2
    message = capsys.readouterr().err
    assert "InputError" in message and "pixels_in_graph = 'false'" in message


# --- bad export() arguments: the same checks, before any work ------------

BAD_ARGUMENTS = {
    "random_weights": ("no", "boolean"),
    "pixels_in_graph": ("false", "boolean"),
    "modes": (5, "names"),
    "out": (5, "path"),
    "min_cos": (2.0, "(0, 1]"),
    "num_threads": (0, "positive integer"),
    "bench_runs": (2.5, "positive integer"),
    "layer_report": ("yes", "boolean"),
    "config": ([1], "table"),
    "thresholds": ({"fp32": 1.5}, "(0, 1]"),
}


@pytest.mark.parametrize("key", sorted(BAD_ARGUMENTS))
def test_bad_export_argument_is_a_typed_error(key, tmp_path):
    value, expected = BAD_ARGUMENTS[key]
    out = tmp_path / "out"
    arguments = {"out": str(out), key: value}
    with pytest.raises(InputError) as error:
        export("mit_b0", **arguments)
    message = str(error.value)
    assert key in message and expected in message, message
    assert repr(value) in message or repr(1.5) in message, message
    assert not out.exists()  # refused before anything was created


@pytest.mark.parametrize("model", [5, None, 3.5])
def test_model_of_no_kind(model, tmp_path):
    with pytest.raises(InputError, match=f"model = {model!r}"):
        export(model, out=str(tmp_path))


def test_cli_threshold_must_be_a_cosine():
    assert _thresholds(["int8=0.98"]) == {"int8": 0.98}
    for value in ("fp32=1.5", "fp32=0", "fp32=nan", "fp32=high"):
        with pytest.raises(InputError, match="MODE=COSINE") as error:
            _thresholds([value])
        assert repr(value) in str(error.value)


# --- checkpoint folders whose config.json is not a config ----------------

BAD_CONFIGS = {
    "bare number": ("5", "JSON int"),
    "list": ("[1, 2]", "JSON list"),
    "string": ('"model_type"', "JSON str"),
    "not json": ("{model_type: segformer", "not readable JSON"),
    "keras config not a dict": (
        '{"class_name": "MiTBackbone", "config": 5}',
        "'config' is 5",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_checkpoint_config_of_the_wrong_type(case, tmp_path):
    text, named = BAD_CONFIGS[case]
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "config.json").write_text(text)
    with pytest.raises(CheckpointError) as error:
        export(str(folder), out=str(tmp_path / "out"))
    assert named in str(error.value) and "config.json" in str(error.value)


# --- where artifacts go: checked before any conversion work --------------


def test_out_that_is_a_file(tmp_path, monkeypatch):
    # no weights on this disk: an out check after loading would instead
    # fail with WeightsNotFoundError
    monkeypatch.setenv("EDGE_BACKBONES_WEIGHTS", str(tmp_path / "none"))
    out = tmp_path / "artifacts"
    out.write_text("a file")
    with pytest.raises(InputError, match="is a file") as error:
        export("mit_b0", out=str(out))
    assert str(out) in str(error.value)
    assert out.read_text() == "a file"


def test_out_in_a_read_only_place(tmp_path, monkeypatch):
    # /sys refuses new folders even to root (chmod does not stop root)
    monkeypatch.setenv("EDGE_BACKBONES_WEIGHTS", str(tmp_path / "none"))
    for out in ("/sys", "/sys/edge_backbones_out"):
        with pytest.raises(InputError, match="Cannot write into") as error:
            export("mit_b0", out=out)
        assert repr(out) in str(error.value)


def test_artifact_place_taken_by_a_folder(tmp_path):
    # found once the model (and so the artifact's name) is known, before
    # any conversion
    (tmp_path / "mit_b0_64x64_fp32.json").mkdir()
    with pytest.raises(InputError, match="not a file") as error:
        export("mit_b0", image_size=64, random_weights=True, out=tmp_path)
    assert "mit_b0_64x64_fp32.json" in str(error.value)
    assert os.listdir(tmp_path) == ["mit_b0_64x64_fp32.json"]


# --- image sizes that cannot fit in memory: refused up front -------------


def test_huge_image_size_is_refused_before_building(tmp_path):
    with pytest.raises(InputError, match="cannot be exported here") as error:
        export(
            "sam_vit_base", image_size=100000, random_weights=True,
            out=str(tmp_path),
        )  # fmt: skip
    assert "100000x100000" in str(error.value)
    assert "GiB" in str(error.value)


def test_8192_mit_b0_is_refused_by_its_attention_estimate(tmp_path):
    with pytest.raises(InputError, match="peak_activation_bytes") as error:
        export(
            "mit_b0", image_size=8192, random_weights=True, out=str(tmp_path)
        )
    assert "8192x8192" in str(error.value)
    assert [p for p in os.listdir(tmp_path)] == []  # work folder removed


def test_activation_estimates_are_the_attention_scores():
    from edge_backbones.models.mit import MiTBackbone
    from edge_backbones.models.vit_det import ViTDetBackbone

    mit = MiTBackbone.from_preset("mit_b0", load_weights=False)
    # stage 1 at 8192: stride 4 -> 2048^2 tokens, sr 8 -> 256^2 keys, 1 head
    assert mit.peak_activation_bytes(8192, 8192) == 4 * 2048**2 * 256**2
    vit = ViTDetBackbone(
        hidden_size=32, num_layers=2, intermediate_dim=48, num_heads=2,
        global_attention_layer_indices=[1], image_shape=(64, 64, 3),
        patch_size=16, num_output_channels=8, window_size=2,
    )  # fmt: skip
    # the global block at 8192: 2 heads x (512^2 tokens)^2
    assert vit.peak_activation_bytes(8192, 8192) == 4 * 2 * (512**2) ** 2
    from edge_backbones.exporter import memory

    # 17 MB of activations, TensorFlow and the weight copies: fits in 2 GiB
    memory.check_backbone(mit, (512, 512), free=2**31)
    with pytest.raises(InputError, match="Free memory"):  # not a size
        memory.check_backbone(mit, (512, 512), free=2**29)
    with pytest.raises(InputError, match="8192x8192"):
        memory.check_backbone(mit, (8192, 8192), free=2**40)


# --- typos and bad checkpoint tensors -------------------------------------


def test_mit_bo_suggests_mit_b0():
    with pytest.raises(UnknownPresetError) as error:
        Backbone.from_preset("mit_bo")
    assert "Did you mean 'mit_b0'?" in str(error.value)


def test_checkpoint_tensor_of_the_wrong_rank(tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from safetensors.numpy import load_file, save_file

    torch.manual_seed(0)
    config = transformers.SegformerConfig(
        hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1],
        num_attention_heads=[1, 1, 1, 1], decoder_hidden_size=16,
    )  # fmt: skip
    transformers.SegformerModel(config).save_pretrained(
        tmp_path, safe_serialization=True
    )
    weights = str(tmp_path / "model.safetensors")
    tensors = load_file(weights)
    key = "encoder.patch_embeddings.0.proj.weight"  # a conv: rank 4
    tensors[key] = tensors[key].reshape(8, -1)
    save_file(tensors, weights)
    with pytest.raises(CheckpointError, match="rank 2") as error:
        Backbone.from_preset(str(tmp_path))
    assert key in str(error.value) and "model rank 4" in str(error.value)


def test_sam_tensor_of_the_wrong_rank(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from safetensors.numpy import load_file, save_file

    save_tiny_sam_checkpoint(tmp_path)
    weights = str(tmp_path / "model.safetensors")
    tensors = load_file(weights)
    key = "vision_encoder.neck.conv1.weight"
    tensors[key] = tensors[key].reshape(-1)
    save_file(tensors, weights)
    with pytest.raises(CheckpointError, match="rank 1") as error:
        Backbone.from_preset(str(tmp_path))
    assert key in str(error.value)


# --- the artifact pair changes together or not at all --------------------


def _sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _pair(out, stem=STEM):
    return tuple(
        _sha(os.path.join(out, stem + ext)) for ext in (".tflite", ".json")
    )


def _metadata(mode):
    """Complete metadata (the writer checks it) of mode `mode`."""
    return {**make_metadata(), "mode": mode}


@pytest.fixture(scope="module")
def previous(tmp_path_factory):
    """A good fp32 artifact of the tiny backbone (seed 0)."""
    import keras

    from tests.tiny import TinyBackbone

    keras.utils.set_random_seed(0)
    out = tmp_path_factory.mktemp("previous")
    export(TinyBackbone(dim=8), image_size=32, modes="fp32", out=str(out),
           name="tiny")  # fmt: skip
    return out


def _copy_previous(previous, out):
    os.makedirs(out, exist_ok=True)
    for ext in (".tflite", ".json"):
        shutil.copy2(os.path.join(previous, STEM + ext), out)
    return _pair(out)


def test_second_rename_failing_restores_the_pair(
    previous, tmp_path, monkeypatch
):
    before = _copy_previous(previous, tmp_path)
    content = open(tmp_path / f"{STEM}.tflite", "rb").read()
    finals = {str(tmp_path / f"{STEM}{ext}") for ext in (".tflite", ".json")}
    real_replace, calls = os.replace, []

    def second_fails(src, dst):
        # whichever of the pair is renamed second fails (disk full)
        if os.fspath(dst) in finals:
            calls.append(dst)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", second_fails)
    with pytest.raises(OSError, match="No space"):
        tflite_metadata.write_artifact(
            str(tmp_path / f"{STEM}.tflite"), content, _metadata("new")
        )
    monkeypatch.undo()
    assert _pair(tmp_path) == before
    assert sorted(os.listdir(tmp_path)) == [f"{STEM}.json", f"{STEM}.tflite"]


def test_sidecar_place_taken_keeps_the_old_model(previous, tmp_path):
    before = _copy_previous(previous, tmp_path)[0]
    os.remove(tmp_path / f"{STEM}.json")
    (tmp_path / f"{STEM}.json").mkdir()
    content = open(tmp_path / f"{STEM}.tflite", "rb").read()
    with pytest.raises(InputError, match="not a file"):
        tflite_metadata.write_artifact(
            str(tmp_path / f"{STEM}.tflite"), content, _metadata("new")
        )
    assert _sha(tmp_path / f"{STEM}.tflite") == before
    assert sorted(os.listdir(tmp_path)) == [f"{STEM}.json", f"{STEM}.tflite"]


# --- killed exports -------------------------------------------------------

KILLED_EXPORT = textwrap.dedent(
    """
    import sys
    import keras
    from tests.tiny import TinyBackbone
    from edge_backbones.exporter.pipeline import export

    keras.utils.set_random_seed(1)  # other weights: another artifact
    export(TinyBackbone(dim=8), image_size=32, modes="fp32",
           out=sys.argv[1], name="tiny")
    """
)


def _run_export(out, kill_at=None, **popen):
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "KERAS_BACKEND": "tensorflow",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    env.pop(workspace.KILL_AT_ENV, None)
    if kill_at:
        env[workspace.KILL_AT_ENV] = kill_at
    return subprocess.Popen(
        [sys.executable, "-c", KILLED_EXPORT, str(out)],
        env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, **popen,
    )  # fmt: skip


def _leftovers(out):
    return sorted(
        name
        for name in os.listdir(out)
        if name.startswith(".") or name.endswith(".tmp")
    )


# (kill point, what the final paths hold right after the kill)
KILL_POINTS = {
    "converting": "old",
    "verifying": "old",
    "staged": "old",  # both new files complete, nothing renamed yet
    "between_renames": "new sidecar, old model",
    "renamed": "new",  # both renamed; the journal still says undo
}


@pytest.mark.matrix_stage
@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_killed_export_keeps_the_previous_artifact(point, previous, tmp_path):
    out = tmp_path / "out"
    before = _copy_previous(previous, out)
    process = _run_export(out, kill_at=point)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == -signal.SIGKILL, stderr.decode()[-2000:]
    model, sidecar = _pair(out)
    # never a partial file at a final path: what is there is a whole
    # artifact, and the model is the old one until both renames happened
    state = KILL_POINTS[point]
    assert (model == before[0]) == (state != "new")
    assert (sidecar == before[1]) == (state == "old")
    if state == "new":  # a whole new pair: the sidecar's hash is the model's
        with open(out / f"{STEM}.json") as f:
            assert json.load(f)["sha256"] == model
    assert any(n.startswith(workspace.PREFIX) for n in _leftovers(out))
    # the next export into the folder cleans up and undoes the commit
    assert workspace.recover(str(out))
    assert _pair(out) == before
    assert _leftovers(out) == []


@pytest.mark.matrix_stage
def test_next_export_cleans_a_killed_one(previous, tmp_path):
    import keras

    from tests.tiny import TinyBackbone

    out = tmp_path / "out"
    before = _copy_previous(previous, out)
    process = _run_export(out, kill_at="between_renames")
    process.communicate(timeout=300)
    assert process.returncode == -signal.SIGKILL
    assert _pair(out)[1] != before[1]  # the half-done commit is visible
    keras.utils.set_random_seed(2)
    export(TinyBackbone(dim=8), image_size=32, modes="fp16", out=str(out),
           name="tiny")  # fmt: skip
    assert _pair(out) == before
    assert _leftovers(out) == []
    assert sorted(os.listdir(out)) == sorted(
        f"{STEM[:-4]}{mode}.{ext}"
        for mode in ("fp32", "fp16") for ext in ("tflite", "json")
    )  # fmt: skip


@pytest.mark.matrix_stage
def test_timed_kill_during_conversion(previous, tmp_path):
    """SIGKILL from outside once the SavedModel is being converted."""
    out = tmp_path / "out"
    before = _copy_previous(previous, out)
    process = _run_export(out)
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and process.poll() is None:
            work = [n for n in os.listdir(out) if n.startswith(".export-")]
            saved = [
                os.path.join(out, n, "saved_model", "saved_model.pb")
                for n in work
            ]
            if any(os.path.exists(p) for p in saved):
                break
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert _pair(out) == before
    workspace.recover(str(out))
    assert _pair(out) == before and _leftovers(out) == []


def test_live_work_folder_is_not_removed(tmp_path):
    """A concurrent export's folder (its owner alive) stays."""
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import sys, time
            from edge_backbones.core.workspace import workspace
            with workspace(sys.argv[1]) as work:
                print(work, flush=True)
                time.sleep(120)
        """), str(tmp_path)],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        work = holder.stdout.readline().strip()
        assert os.path.isdir(work)
        assert workspace.recover(str(tmp_path)) == []
        assert os.path.isdir(work)
    finally:
        holder.kill()
        holder.wait()
    assert workspace.recover(str(tmp_path)) == [work]
    assert os.listdir(tmp_path) == []


def test_options_table_covers_every_export_keyword():
    import inspect

    names = set(inspect.signature(export).parameters)
    checked = set(options.EXPORT_OPTIONS) | {"model", "calibration"}
    assert names - checked == set(), names - checked
