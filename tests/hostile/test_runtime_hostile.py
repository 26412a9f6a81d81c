"""Hostile inputs against the runtime: every one ends in a typed error whose
message names the problem, never in a crash or a silent wrong answer.

Damaged model files are opened in a child process: if the interpreter
crashes on one, the child dies and this suite reports it as a failure
instead of dying with it.
"""

import concurrent.futures
import json
import os
import subprocess
import sys
import textwrap
import time

import cv2
import numpy as np
import pytest

from edge_backbones.cli import main as cli_main
from edge_backbones.errors import (
    DelegateUnavailableError,
    InputError,
    IntegrityError,
    MetadataError,
    ModelFileError,
)
from edge_backbones.runtime import EdgeModel
from edge_backbones.runtime.model_file import read_model_file
from tests import tiny
from tests.tiny import SIZE

# what a damaged file may raise, and words its message must contain
_DAMAGE_ERRORS = {
    "IntegrityError": "not the file that was exported|damaged or rewritten",
    "ModelFileError": "truncated or corrupt|not a TFLite model|cannot load",
    "MetadataError": "not valid UTF-8 JSON|schema",
}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile_runtime")
    contents = tiny.convert_two_conv_all(str(folder))
    paths = {"contents": contents}
    for key, dtype in (("f32", "float32"), ("int8", "int8"),
                       ("uint8", "uint8")):  # fmt: skip
        meta = tiny.artifact_metadata(dtype)
        paths[key] = tiny.write_artifact(
            str(folder / f"{key}.tflite"), contents[key], meta
        )
    paths["legacy"] = tiny.write_legacy_artifact(
        str(folder / "legacy.tflite"), contents["f32"], tiny.artifact_metadata()
    )
    return paths


def _rgb_images(count, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (40, 48, 3), np.uint8) for _ in range(count)]


# -- non-finite pixels ------------------------------------------------------


@pytest.mark.parametrize("key", ["int8", "uint8"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_input_to_quantized_model_is_refused(models, key, bad):
    model = EdgeModel(models[key])
    x = np.zeros((SIZE, SIZE, 3), np.float32)
    x[3, 5, 1] = bad
    with pytest.raises(InputError, match="non-finite") as info:
        model(x)
    assert key in str(info.value) and "(0, 3, 5, 1)" in str(info.value)
    # the opt-in is for float models only: int8 has no value for NaN
    with pytest.raises(InputError, match="non-finite"):
        EdgeModel(models[key], allow_nonfinite=True)(x)


def test_nonfinite_input_to_float_model_needs_the_opt_in(models):
    x = np.zeros((SIZE, SIZE, 3), np.float32)
    x[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="allow_nonfinite=True"):
        EdgeModel(models["f32"])(x)
    out = EdgeModel(models["f32"], allow_nonfinite=True)(x)
    assert np.isnan(out["P1"]).any()  # what the caller asked for
    # finite values are untouched by the check, however large
    big = np.full((SIZE, SIZE, 3), 3e38, np.float32)
    assert EdgeModel(models["f32"])(big)["P1"].shape == (1, 16, 16, 8)


# -- damaged model files, opened in a child process -------------------------

_CHILD = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from edge_backbones.runtime import EdgeModel
    for path in sys.argv[1:]:
        try:
            model = EdgeModel(path)
            x = np.zeros(model.input_spec.shape[1:], np.float32)
            model(x)
            result = {"type": "OK", "integrity": model.integrity}
        except Exception as exc:
            result = {"type": type(exc).__name__, "message": str(exc)}
        print(json.dumps({"path": path, **result}), flush=True)
    """
)


def _open_in_child(paths):
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert proc.returncode == 0, (
        f"the child crashed (code {proc.returncode}) after "
        f"{len(results)} of {len(paths)} files, on "
        f"{paths[len(results)]}: {proc.stderr[-2000:]}"
    )
    return results


def _assert_refused(results):
    for result in results:
        assert result["type"] in _DAMAGE_ERRORS, result
        assert any(
            word in result["message"]
            for word in _DAMAGE_ERRORS[result["type"]].split("|")
        ), result
        assert os.path.basename(result["path"]) in result["message"], result


def test_bit_flips_never_run_silently(models, tmp_path):
    data = open(models["f32"], "rb").read()
    rng = np.random.default_rng(0)
    # the "content_sha256" key itself: a damaged key must not pass for an
    # export from before the digest (which the runtime loads unchecked)
    start = read_model_file(models["f32"]).metadata_spans["edge_backbones"][0]
    key = [start + 2, start + 9, start + 15]
    # spread over the file, plus the first and last bytes
    positions = sorted(
        {0, len(data) - 1, *key, *rng.integers(0, len(data), 40)}
    )
    paths = []
    for position in positions:
        flipped = bytearray(data)
        flipped[position] ^= 1 << int(rng.integers(0, 8))
        path = tmp_path / f"flip_{position}.tflite"
        path.write_bytes(flipped)
        paths.append(path)
    results = _open_in_child(paths)
    _assert_refused(results)
    # most flips land in the graph or weights; the digest names them
    assert sum(r["type"] == "IntegrityError" for r in results) > 30


def test_corrupt_and_truncated_models_are_refused(models, tmp_path):
    cases = {}
    for key in ("f32", "legacy"):
        data = open(models[key], "rb").read()
        for cut in (8, 64, len(data) // 2, len(data) - 16):
            cases[f"{key}_cut{cut}"] = data[:cut]
        cases[f"{key}_zeros_after_header"] = data[:8] + bytes(len(data) - 8)
    cases["not_tflite"] = b"\x89PNG\r\n\x1a\n" + bytes(100)
    cases["empty"] = b""
    paths = []
    for name, data in cases.items():
        path = tmp_path / f"{name}.tflite"
        path.write_bytes(data)
        paths.append(path)
    results = _open_in_child(paths)
    _assert_refused([r for r in results if "empty" not in r["path"]])
    empty = [r for r in results if "empty" in r["path"]]
    assert empty[0]["type"] == "ModelFileError"
    assert "empty (0 bytes)" in empty[0]["message"]


# -- integrity: which check ran ---------------------------------------------


def test_integrity_check_says_which_check_ran(models, tmp_path):
    assert EdgeModel(models["f32"]).integrity == "embedded-sha256"
    skipped = EdgeModel(models["f32"], verify_integrity=False)
    assert skipped.integrity == "skipped"
    # an export from before the digest: still loads, and says so
    assert EdgeModel(models["legacy"]).integrity == "none recorded"
    # with its sidecar beside it, the sidecar's sha256 is checked
    legacy = tmp_path / "legacy.tflite"
    legacy.write_bytes(open(models["legacy"], "rb").read())
    sha = __import__("hashlib").sha256(legacy.read_bytes()).hexdigest()
    sidecar = {**tiny.artifact_metadata(), "sha256": sha}
    (tmp_path / "legacy.json").write_text(json.dumps(sidecar))
    assert EdgeModel(legacy).integrity == "sidecar-sha256"
    # a weight changed after export: the sidecar catches it
    data = bytearray(legacy.read_bytes())
    data[len(data) // 2] ^= 0x10
    legacy.write_bytes(data)
    with pytest.raises(IntegrityError, match="describes another build"):
        EdgeModel(legacy)


def test_flipped_weight_is_named_with_the_fix(models, tmp_path):
    data = bytearray(open(models["f32"], "rb").read())
    data[len(data) // 3] ^= 0x04
    path = tmp_path / "flipped.tflite"
    path.write_bytes(data)
    with pytest.raises(IntegrityError) as info:
        EdgeModel(path)
    message = str(info.value)
    assert "flipped.tflite" in message and "export it again" in message
    assert "verify_integrity=False" in message


# -- odd images ---------------------------------------------------------------


def _png(path, array):
    assert cv2.imwrite(str(path), array)
    return path


def test_odd_image_files_work_or_say_why(models, tmp_path):
    model = EdgeModel(models["f32"])
    rgb = _rgb_images(1)[0]
    reference = model.predict(rgb)["P2"]
    gray = rgb[..., 0]
    # grayscale (1 channel), RGBA, and 16-bit files give the 8-bit RGB result
    same = {
        "gray": (_png(tmp_path / "gray.png", gray), np.repeat(
            gray[..., None], 3, -1)),
        "rgba": (_png(tmp_path / "rgba.png", np.dstack(
            [rgb[..., ::-1], np.full(gray.shape, 7, np.uint8)])), rgb),
        "16bit": (_png(tmp_path / "deep.png",
                       rgb[..., ::-1].astype(np.uint16) * 257), rgb),
    }  # fmt: skip
    for name, (path, expected) in same.items():
        got = model.predict(str(path))["P2"]
        np.testing.assert_array_equal(got, model.predict(expected)["P2"], name)
    np.testing.assert_array_equal(model.predict(str(same["16bit"][0]))["P2"],
                                  reference)  # fmt: skip

    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not an image at all\n" * 20)
    (tmp_path / "folder.jpg").mkdir()
    refused = {
        "empty.jpg": "0 bytes",
        "text.jpg": "cannot decode",
        "folder.jpg": "a file, not a folder",
        "missing.jpg": "No image file",
    }
    for name, words in refused.items():
        with pytest.raises(InputError, match=words) as info:
            model.predict(str(tmp_path / name))
        assert name in str(info.value)


def test_unreadable_image_file(models, tmp_path, monkeypatch):
    model = EdgeModel(models["f32"])
    path = _png(tmp_path / "locked.png", _rgb_images(1)[0])

    # root reads any file whatever its mode, so the denial is simulated
    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(np, "fromfile", denied)
    with pytest.raises(InputError, match="Cannot read the image") as info:
        model.predict(str(path))
    assert "locked.png" in str(info.value) and "readable" in str(info.value)


@pytest.mark.parametrize(
    "array, words",
    [
        (np.zeros((0, 10, 3), np.uint8), "empty"),
        (np.zeros((10, 10, 5), np.uint8), r"shape \(10, 10, 5\)"),
        (np.zeros((10, 10, 3), np.float64), "dtype float64"),
        (np.zeros((10, 10, 3), bool), "dtype bool"),
        (None, "got NoneType"),
    ],
)
def test_odd_image_arrays(models, array, words):
    with pytest.raises(InputError, match=words):
        EdgeModel(models["f32"]).predict(array)


def test_run_command_names_a_bad_image(models, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    assert cli_main(["run", str(models["f32"]), str(bad)]) == 2
    err = capsys.readouterr().err
    assert "InputError" in err and "bad.png" in err and "decode" in err


# -- bad arguments, sidecars and signatures ---------------------------------


def test_delegates_none(models):
    with pytest.raises(DelegateUnavailableError, match="delegates=None"):
        EdgeModel(models["f32"], delegates=None)


@pytest.mark.parametrize("kind", ["folder", "not_json", "unreadable"])
def test_sidecar_that_cannot_be_read(models, tmp_path, monkeypatch, kind):
    path = tmp_path / "side.tflite"
    path.write_bytes(models["contents"]["f32"])  # metadata in a sidecar only
    sidecar = tmp_path / "side.json"
    words = {"folder": "is a folder", "not_json": "not valid UTF-8 JSON",
             "unreadable": "Cannot read the sidecar"}[kind]  # fmt: skip
    if kind == "folder":
        sidecar.mkdir()
    else:
        sidecar.write_text("{not json" if kind == "not_json" else "{}")
    if kind == "unreadable":
        real_open = open

        def denied(file, *args, **kwargs):
            if str(file) == str(sidecar):
                raise PermissionError(13, "Permission denied", str(file))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr("builtins.open", denied)
    with pytest.raises(MetadataError, match=words) as info:
        EdgeModel(path)
    assert "side.json" in str(info.value)


def test_stripped_signature_is_named(models, tmp_path):
    stripped = tiny.strip_signatures(models["contents"]["f32"])
    path = tiny.write_legacy_artifact(
        str(tmp_path / "nosig.tflite"), stripped, tiny.artifact_metadata()
    )
    with pytest.raises(ModelFileError, match="no SignatureDef") as info:
        EdgeModel(path)
    assert "copied" not in str(info.value)


# -- bench must not overwrite what it measures ------------------------------


def test_bench_json_refuses_the_sidecar_and_the_model(models, tmp_path, capsys):
    model = tmp_path / "m.tflite"
    model.write_bytes(open(models["f32"], "rb").read())
    sidecar = tmp_path / "m.json"
    sidecar.write_text('{"sha256": "kept"}')
    for target, words in ((sidecar, "is the sidecar of"),
                          (model, "is the model file itself")):  # fmt: skip
        before = target.read_bytes()
        code = cli_main(["bench", str(model), "--json", str(target),
                         "--runs", "1", "--warmup", "0"])  # fmt: skip
        err = capsys.readouterr().err
        assert code == 2 and "InputError" in err and words in err
        assert "m.bench.json" in err  # a name that is free
        assert target.read_bytes() == before
    folder = tmp_path / "out"
    folder.mkdir()
    assert cli_main(["bench", str(model), "--json", str(folder)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_bench_json_in_a_read_only_folder(models, tmp_path, monkeypatch,
                                          capsys):  # fmt: skip
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    # root may write anywhere, so the denial is simulated
    monkeypatch.setattr(
        os, "access",
        lambda p, mode: p != str(locked) and real_access(p, mode),
    )  # fmt: skip
    target = str(locked / "r.json")
    assert cli_main(["bench", str(models["f32"]), "--json", target]) == 2
    err = capsys.readouterr().err
    assert "InputError" in err and "not writable" in err and "locked" in err


# -- many threads, one model --------------------------------------------------


def test_concurrent_predict_is_bit_identical_to_serial(models):
    model = EdgeModel(models["int8"])
    images = _rgb_images(16, seed=3)
    serial = [model.predict(image) for image in images]
    interpreter = model._engine.interpreter
    real_invoke = interpreter.invoke

    def slow_invoke():
        # a slower device: the GIL is free while the result waits, the
        # moment another thread could set its input over this one's
        real_invoke()
        time.sleep(0.002)

    for slow in (False, True):
        if slow:
            interpreter.invoke = slow_invoke
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            parallel = list(pool.map(model.predict, images))
        for one, other in zip(serial, parallel, strict=True):
            for name in one:
                np.testing.assert_array_equal(one[name], other[name])
