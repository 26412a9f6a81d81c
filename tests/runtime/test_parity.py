"""ARM-vs-x86 comparison: figures and bounds on synthetic runs."""

import numpy as np
import pytest

from edge_backbones.errors import InputError
from edge_backbones.runtime import parity

SCALE = 0.05


def _run(outputs, modes, unloadable=None):
    artifacts = {
        stem: {
            "model": "m",
            "mode": mode,
            "levels": {"P1": None if mode == "fp32" else SCALE},
        }
        for stem, mode in modes.items()
    }
    info = {
        "delegates": ["xnnpack"],
        "artifacts": artifacts,
        "unloadable": unloadable or {},
    }
    return {
        "info": info,
        "outputs": {f"{s}/xnnpack/P1": v for s, v in outputs.items()},
    }


@pytest.fixture
def x86():
    rng = np.random.default_rng(0)
    fp32 = rng.normal(size=(2, 8, 8, 4)).astype(np.float32)
    # int8 outputs: fp32 on a grid of SCALE plus up to 3 steps of noise
    steps = np.round(fp32 / SCALE) + rng.integers(-3, 4, fp32.shape)
    return {"m_fp32": fp32, "m_npu": (steps * SCALE).astype(np.float32)}


def modes():
    return {"m_fp32": "fp32", "m_npu": "npu_int8"}


def _rows(x86, device):
    rows = parity.compare(_run(x86, modes()), _run(device, modes()))
    return {row["artifact"]: row for row in rows}


def test_identical_runs_are_exact(x86):
    rows = _rows(x86, dict(x86))
    assert parity.verdict(rows["m_fp32"]) == ("exact", [])
    assert parity.verdict(rows["m_npu"]) == ("exact", [])
    npu = rows["m_npu"]["levels"]["P1"]
    assert npu["max_steps"] == 0 and npu["cosine"] == 1.0
    # fidelity: the int8 output against the same machine's fp32 output,
    # the lowest over images
    fp32, int8 = (x86[k].reshape(2, -1).astype(np.float64) for k in modes())
    cosines = np.sum(fp32 * int8, 1) / (
        np.linalg.norm(fp32, axis=1) * np.linalg.norm(int8, axis=1)
    )
    assert npu["fidelity"] == pytest.approx(cosines.min(), abs=1e-12)
    assert npu["fidelity"] == npu["reference_fidelity"] < 0.999


def test_float_must_agree_to_1e5_of_the_peak(x86):
    peak = np.abs(x86["m_fp32"]).max()
    close = dict(x86, m_fp32=x86["m_fp32"] + np.float32(peak * 5e-6))
    assert parity.verdict(_rows(x86, close)["m_fp32"]) == (
        "float rounding",
        [],
    )
    far = dict(x86, m_fp32=x86["m_fp32"] + np.float32(peak * 5e-5))
    kind, problems = parity.verdict(_rows(x86, far)["m_fp32"])
    assert kind == "OUT OF BOUNDS" and "float outputs differ" in problems[0]


def test_int8_one_step_flips_are_within_0999(x86):
    rng = np.random.default_rng(1)
    one_step = x86["m_npu"] + SCALE * (rng.random(x86["m_npu"].shape) < 0.1)
    row = _rows(x86, dict(x86, m_npu=one_step))["m_npu"]
    assert row["levels"]["P1"]["max_steps"] == 1
    assert parity.verdict(row) == ("cosine >= 0.999", [])


@pytest.fixture
def coarse():
    """x86 int8 with a larger error (up to 7 steps): room to tell the
    bounds apart. Returns (fp32, x86 int8, x86's noise in steps)."""
    rng = np.random.default_rng(2)
    fp32 = rng.normal(size=(2, 8, 8, 4)).astype(np.float32)
    noise = rng.integers(-7, 8, fp32.shape)
    return fp32, (np.round(fp32 / SCALE) + noise) * SCALE, noise


def _coarse_row(coarse, device_int8, delegate="xnnpack"):
    fp32, int8, _ = coarse
    runs = []
    for outputs in (
        {"m_fp32": fp32, "m_npu": int8},
        {"m_fp32": fp32, "m_npu": device_int8},
    ):
        run = _run({k: np.float32(v) for k, v in outputs.items()}, modes())
        run["info"]["delegates"] = [delegate]
        run["outputs"] = {
            key.replace("/xnnpack/", f"/{delegate}/"): value
            for key, value in run["outputs"].items()
        }
        runs.append(run)
    (row,) = [r for r in parity.compare(*runs) if r["artifact"] == "m_npu"]
    return row


def test_int8_rounding_flips_are_within_int8_error(coarse):
    fp32, int8, _ = coarse
    flips = np.random.default_rng(3).choice([-2, 0, 2], size=int8.shape)
    row = _coarse_row(coarse, int8 + SCALE * flips)
    figures = row["levels"]["P1"]
    assert figures["cosine"] < parity.MIN_INT_COSINE
    assert 1 - figures["fidelity"] <= 1.25 * (1 - figures["reference_fidelity"])
    assert parity.verdict(row) == ("within int8 error", [])


def test_int8_anticorrelated_outputs_are_out_of_bounds(coarse):
    fp32, int8, noise = coarse
    # the same int8 error as x86's, in the opposite direction: fidelity
    # alone cannot see it, the two machines' disagreement does
    mirrored = (np.round(fp32 / SCALE) - noise) * SCALE
    row = _coarse_row(coarse, mirrored)
    figures = row["levels"]["P1"]
    assert figures["fidelity"] == pytest.approx(
        figures["reference_fidelity"], abs=2e-3
    )
    kind, problems = parity.verdict(row)
    assert kind == "OUT OF BOUNDS"
    assert "worse than two independent roundings" in problems[0]


def test_int8_error_larger_on_the_device_is_out_of_bounds(coarse):
    fp32, int8, _ = coarse
    extra = np.random.default_rng(4).integers(-7, 8, int8.shape)
    row = _coarse_row(coarse, int8 + SCALE * extra)
    figures = row["levels"]["P1"]
    assert 1 - figures["fidelity"] > 1.25 * (1 - figures["reference_fidelity"])
    kind, problems = parity.verdict(row)
    assert kind == "OUT OF BOUNDS" and "more than 1.25x" in problems[0]


def test_portable_kernels_must_compute_the_same_integers(coarse):
    fp32, int8, _ = coarse
    one_flip = int8.copy()
    one_flip.flat[5] += SCALE
    assert parity.verdict(_coarse_row(coarse, int8, "portable"))[0] == "exact"
    row = _coarse_row(coarse, one_flip, "portable")
    kind, problems = parity.verdict(row)
    assert kind == "OUT OF BOUNDS"
    assert "round the same on every machine" in problems[0]
    # a dynamic-range graph computes partly in float, even there
    assert parity.verdict(dict(row, mode="cpu"))[1] == []
    # the same flip through XNNPACK is a rounding difference
    assert parity.verdict(_coarse_row(coarse, one_flip))[1] == []


def test_unloadable_artifacts_are_left_out_and_missing_outputs_refused(x86):
    device = _run({"m_fp32": x86["m_fp32"]}, modes(), {"m_npu": "version"})
    rows = parity.compare(_run(x86, modes()), device)
    assert [row["artifact"] for row in rows] == ["m_fp32"]
    device["info"]["unloadable"] = {}
    with pytest.raises(InputError, match="m_npu/xnnpack/P1"):
        parity.compare(_run(x86, modes()), device)


def test_saved_runs_round_trip(tmp_path, x86):
    run = _run(x86, modes())
    parity.save_run(tmp_path, "dev", run)
    loaded = parity.load_run(tmp_path, "dev")
    assert loaded["info"] == run["info"]
    for key, value in run["outputs"].items():
        np.testing.assert_array_equal(loaded["outputs"][key], value)
    with pytest.raises(InputError, match="No run 'other'"):
        parity.load_run(tmp_path, "other")
