"""Fidelity figures against hand-computed values, and the gate."""

import numpy as np
import pytest

from edge_backbones.atomic_io import dumps_json, loads_json_strict
from edge_backbones.core import fidelity as fidelity_lib
from edge_backbones.errors import FidelityError
from edge_backbones.exporter import verify


def test_identical_outputs():
    ref = {"P1": np.arange(24, dtype=np.float32).reshape(2, 3, 4)}
    out = {"P1": ref["P1"] + np.float32(0.5)}
    fid = fidelity_lib.compare(ref, {"P1": ref["P1"]})
    # no error, no finite SQNR: null plus a flag, never Infinity
    assert fid == {
        "images": 2,
        "levels": {"P1": {"cosine": 1.0, "sqnr_db": None, "exact": True,
                          "max_abs": 0.0}},
    }  # fmt: skip
    assert loads_json_strict(dumps_json(fid)) == fid
    assert fidelity_lib.format_fidelity(fid) == "cos 1.0000 (P1) sqnr exact"
    # one exact level among others: the minimum is the measured one
    both = fidelity_lib.compare(
        {**ref, "P2": ref["P1"]}, {**out, "P2": ref["P1"]}
    )
    assert (
        fidelity_lib.min_level(both, "sqnr_db")
        == both["levels"]["P1"]["sqnr_db"]
    )
    assert "exact" not in both["levels"]["P1"]


def test_known_error():
    # signal energy 4 * 1 per image, error energy 4 * 0.01: SQNR 20 dB
    ref = {"P1": np.ones((2, 4), np.float32)}
    out = {"P1": np.ones((2, 4), np.float32) + np.float32(0.1)}
    fid = fidelity_lib.compare(ref, out)["levels"]["P1"]
    assert fid["sqnr_db"] == pytest.approx(10 * np.log10(1 / 0.01), abs=0.01)
    assert fid["max_abs"] == pytest.approx(0.1, abs=1e-6)
    # a constant offset along the signal keeps the direction: cosine 1
    assert fid["cosine"] == pytest.approx(1.0)


def test_cosine_is_the_worst_image():
    ref = {"P1": np.array([[1.0, 0.0], [1.0, 0.0]])}
    out = {"P1": np.array([[1.0, 0.0], [1.0, 1.0]])}
    fid = fidelity_lib.compare(ref, out)["levels"]["P1"]
    assert fid["cosine"] == pytest.approx(1 / np.sqrt(2), abs=1e-6)


def test_check_raises_with_figures():
    fid = fidelity_lib.compare(
        {"P1": np.array([[1.0, 0.0]]), "P2": np.array([[1.0, 1.0]])},
        {"P1": np.array([[0.0, 1.0]]), "P2": np.array([[1.0, 1.0]])},
    )
    with pytest.raises(FidelityError) as info:
        verify.check(fid, 0.99, "int8", "m_int8.tflite")
    message = str(info.value)
    assert "P1: cosine 0.000000" in message and "P2" not in message
    assert "--threshold int8=" in message
    assert info.value.fidelity is fid
    verify.check(fid, -1.0, "int8", "m_int8.tflite")  # passes


def test_missing_level_and_shape_mismatch():
    with pytest.raises(FidelityError, match="P2"):
        fidelity_lib.compare({"P1": np.ones((1, 2)), "P2": np.ones((1, 2))},
                       {"P1": np.ones((1, 2))})  # fmt: skip
    with pytest.raises(FidelityError, match="shape"):
        fidelity_lib.compare({"P1": np.ones((1, 2))}, {"P1": np.ones((1, 3))})


def test_every_mode_and_target_has_a_threshold():
    from edge_backbones.core.modes import MODE_PLANS, TARGETS

    assert set(verify.DEFAULT_MIN_COSINE) == set(MODE_PLANS) | set(TARGETS)


@pytest.mark.parametrize("broken", [0.0, np.nan, np.inf])
def test_zero_or_non_finite_output_fails_the_gate(broken):
    # an artifact that outputs zeros or NaN must not pass as cosine 1
    ref = {"P1": np.ones((2, 4)), "P2": np.ones((2, 4))}
    out = {"P1": np.full((2, 4), broken), "P2": np.ones((2, 4))}
    fid = fidelity_lib.compare(ref, out)
    assert not fid["levels"]["P1"]["cosine"] >= 0.5
    assert fidelity_lib.worst(fid)[0] == "P1"
    with pytest.raises(FidelityError, match="P1"):
        verify.check(fid, 0.5, "int8", "m_int8.tflite")
    # both maps all zero is a perfect match
    zeros = {"P1": np.zeros((2, 4))}
    assert fidelity_lib.compare(zeros, zeros)["levels"]["P1"]["cosine"] == 1.0


def test_worst_level_is_one_rule_for_every_metric():
    nan = float("nan")
    fid = {
        "images": 2,
        "levels": {
            "P1": {"cosine": 0.97, "sqnr_db": None, "exact": True},
            "P2": {"cosine": nan, "sqnr_db": 12.5},
            "P3": {"cosine": 0.5, "sqnr_db": 30.0},
        },
    }
    # NaN is the worst wherever it stands (min() alone is order-dependent)
    assert fidelity_lib.worst(fid)[0] == "P2"
    assert (
        fidelity_lib.worst({"levels": dict(reversed(fid["levels"].items()))})[0]
        == "P2"
    )
    # an exact level has no SQNR: it is passed over, not taken as 0 or inf
    assert fidelity_lib.min_level(fid, "sqnr_db") == 12.5
    assert fidelity_lib.worst(fid, "sqnr_db")[0] == "P2"
    exact = {"levels": {"P1": fid["levels"]["P1"]}}
    assert fidelity_lib.min_level(exact, "sqnr_db") is None
    assert fidelity_lib.min_level(exact, "cosine") == 0.97
    # a row without fidelity (a foreign artifact) has no figure at all
    assert fidelity_lib.min_level(None, "cosine") is None
    assert fidelity_lib.min_level({"levels": {}}, "cosine") is None
