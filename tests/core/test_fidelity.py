"""core.fidelity: the one cosine/SQNR implementation and its edge cases."""

import numpy as np
import pytest

from edge_backbones.core import fidelity
from edge_backbones.errors import FidelityError


def test_per_image_cosines_against_a_hand_computation():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(3, 4, 5))
    out = ref + rng.normal(scale=0.3, size=ref.shape)
    want = [
        float(r.ravel() @ o.ravel() / np.linalg.norm(r) / np.linalg.norm(o))
        for r, o in zip(ref, out, strict=True)
    ]
    np.testing.assert_allclose(fidelity.cosines(ref, out), want, rtol=1e-12)
    assert fidelity.min_cosine(ref, out) == pytest.approx(min(want), 1e-12)
    whole = ref.ravel() @ out.ravel()
    whole /= np.linalg.norm(ref) * np.linalg.norm(out)
    assert fidelity.cosine(ref, out) == pytest.approx(whole, 1e-12)


def test_edge_cases_are_decided_once():
    zeros = np.zeros((2, 3))
    ones = np.ones((2, 3))
    # two zero maps are equal; a zero map against a non-zero one is 0
    assert fidelity.min_cosine(zeros, zeros) == 1.0
    assert fidelity.min_cosine(zeros, ones) == 0.0
    assert fidelity.min_cosine(ones, zeros) == 0.0
    # never above 1 from float rounding
    x = np.full((1, 1000), 0.1)
    assert fidelity.min_cosine(x, x) <= 1.0
    # non-finite outputs give NaN, which fails every `>=` gate
    bad = ones.copy()
    bad[1, 0] = np.nan
    assert np.isnan(fidelity.min_cosine(ones, bad))
    with pytest.raises(FidelityError, match="shape"):
        fidelity.cosines(ones, np.ones((2, 4)))


def test_compare_writes_an_exact_match_as_null_sqnr():
    ref = {"P1": np.arange(6.0).reshape(2, 3) + 1}
    fid = fidelity.compare(ref, {"P1": ref["P1"].copy()})
    assert fid == {
        "images": 2,
        "levels": {
            "P1": {
                "cosine": 1.0,
                "sqnr_db": None,
                "exact": True,
                "max_abs": 0.0,
            }
        },
    }
    noisy = {"P1": ref["P1"] + 0.5}
    level = fidelity.compare(ref, noisy)["levels"]["P1"]
    sqnr = 10 * np.log10(np.sum(ref["P1"] ** 2) / (6 * 0.25))
    assert level["sqnr_db"] == round(sqnr, 2)
    assert level["max_abs"] == 0.5
    assert "exact" not in level
