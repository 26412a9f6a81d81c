"""`edge-backbones export` on a real (tiny) MiT checkpoint folder."""

import json
import os

from edge_backbones.cli import main
from tests.tiny import TINY_MIT_TWO_STAGES


def test_export_checkpoint_folder(tmp_path, capsys):
    from edge_backbones.models.mit import MiTBackbone

    folder = str(tmp_path / "tiny_mit")
    MiTBackbone(**TINY_MIT_TWO_STAGES).save_to_preset(folder)
    out = tmp_path / "out"
    code = main(
        ["export", folder, "--image-size", "32x64", "--modes", "fp32,fp16",
         "--out", str(out), "--threshold", "fp16=0.99"]
    )  # fmt: skip
    assert code == 0
    captured = capsys.readouterr()
    # one line per artifact on stderr: mode, path, size, time, fidelity
    done = [line for line in captured.err.splitlines() if " MB " in line]
    assert len(done) == 2 and all("cos " in line for line in done)
    assert captured.out.split() == [
        str(out / "tiny_mit_32x64_fp32.tflite"),
        str(out / "tiny_mit_32x64_fp16.tflite"),
    ]
    with open(out / "tiny_mit_32x64_fp32.json") as f:
        meta = json.load(f)
    assert meta["model"]["class_name"] == "MiTBackbone"
    assert meta["model"]["weights"] == os.path.abspath(folder)
    assert meta["outputs"]["P2"]["shape"] == [1, 4, 8, 16]


def test_missing_weights_exit_code_and_hint(tmp_path, capsys):
    code = main(["export", "mit_b0", "--image-size", "64", "--out",
                 str(tmp_path)])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "WeightsNotFoundError" in err and "--random-weights" in err


def test_bad_size_is_a_clean_error(tmp_path, capsys):
    code = main(["export", "mit_b0", "--image-size", "wide", "--out",
                 str(tmp_path)])  # fmt: skip
    assert code == 2
    assert "384x640" in capsys.readouterr().err
