"""The one comma-list parser, and the CLIs and recipes that use it."""

import pytest

from edge_backbones.export.recipes import resolve_plans
from edge_backbones.runtime.cli import thread_counts
from edge_backbones.text import split_commas


@pytest.mark.parametrize(
    "value, expected",
    [
        (" int8, fp16 ,,cpu ", ["int8", "fp16", "cpu"]),
        ("fp32", ["fp32"]),
        (",", []),
        (None, []),
        (("int8", "fp16"), ["int8", "fp16"]),
    ],
)
def test_split_commas(value, expected):
    assert split_commas(value) == expected


def test_users_strip_spaces_and_drop_empty_items():
    # a recipe value and a runtime flag written with spaces parse alike
    assert [p.mode for p in resolve_plans(" fp32 ,, fp16", None)] == [
        "fp32",
        "fp16",
    ]
    assert thread_counts(" 1, 4,") == [1, 4]
