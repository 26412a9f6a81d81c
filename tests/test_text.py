"""The one comma-list parser, and the CLIs and recipes that use it."""

import pytest

from edge_backbones.exporter.recipes import resolve_plans
from edge_backbones.runtime.cli import thread_counts
from edge_backbones.text import megabytes, split_commas


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


def test_every_printed_mb_is_ten_to_the_six_bytes():
    from edge_backbones.exporter.pipeline import ArtifactRecord

    assert megabytes(13_280_000) == 13.28
    record = ArtifactRecord(
        mode="int8",
        path="m_int8.tflite",
        size_bytes=5_000_000,
        seconds=1.0,
        fidelity=None,
        metadata={},
    )
    # 5.00 MB; a MiB figure would print 4.77
    assert "  5.00 MB  " in record.summary()
