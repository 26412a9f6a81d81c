"""Conversions in a child process (`exporter.isolated`): the same artifact
as in one process, the child's typed errors as the parent's, a killed
child and Ctrl-C handled with nothing left behind."""

import json
import os
import signal
import time

import pytest

from edge_backbones.errors import ExportError, InputError
from edge_backbones.exporter import isolated, memory
from edge_backbones.exporter.pipeline import export


def _raise_input_error(message):
    raise InputError(message)


def _kill_self():
    os.kill(os.getpid(), signal.SIGKILL)


def _write_pid_and_sleep(path):
    with open(path, "w") as f:
        f.write(str(os.getpid()))
    time.sleep(60)


def _add(a, b):
    return a + b


def test_result_and_peak_come_back():
    value, peak = isolated.run(_add, 2, 3)
    assert value == 5
    assert 10 * 2**20 < peak < 2**31  # a Python process's resident bytes


def test_child_typed_error_reaches_parent_unchanged():
    with pytest.raises(InputError, match=r"^bad size 7x7; use 64$"):
        isolated.run(_raise_input_error, "bad size 7x7; use 64")


def test_killed_child_is_an_export_error_naming_the_signal():
    with pytest.raises(ExportError, match="SIGKILL.*OOM killer"):
        isolated.run(_kill_self, what="the fp16 conversion's child process")


def test_ctrl_c_ends_the_child(tmp_path):
    pid_file = tmp_path / "pid"

    def interrupt(signum, frame):
        if pid_file.exists():  # the child is running
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2, 0.2)
        with pytest.raises(KeyboardInterrupt):
            isolated.run(_write_pid_and_sleep, str(pid_file))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # gone (and reaped)


def test_calibrating_converter_is_refused_in_a_child(tmp_path):
    with pytest.raises(ExportError, match="int8.*own process"):
        isolated.convert(str(tmp_path), "int8", str(tmp_path / "x.tflite"))


def test_isolated_export_writes_the_same_artifact(
    tiny_backbone, tmp_path, monkeypatch, capfd
):
    kwargs = dict(image_size="32x32", modes="fp32", seed=0)
    alone = {
        r.mode: r for r in export(tiny_backbone, out=tmp_path / "a", **kwargs)
    }
    monkeypatch.setattr(
        memory, "isolate_conversion", lambda *args, **kwargs: True
    )
    capfd.readouterr()
    split = {
        r.mode: r for r in export(tiny_backbone, out=tmp_path / "b", **kwargs)
    }
    log = capfd.readouterr().err
    assert "converting in child processes" in log
    assert "convert fp32: child process peak RSS" in log
    for mode in ("fp32",):
        a, b = alone[mode].metadata, split[mode].metadata
        assert a["fidelity"] == b["fidelity"]
        assert a["graph"] == b["graph"] and a["model"] == b["model"]
        with open(split[mode].path[: -len(".tflite")] + ".json") as f:
            assert json.load(f)["mode"] == mode
    # nothing of the children's is left in the output folder
    assert sorted(os.listdir(tmp_path / "b")) == sorted(
        os.listdir(tmp_path / "a")
    )
