"""`report --artifacts` on a SAM pair: the decoder timed per prompt, its
mask IoU in the row, and one table row per mode pairing the two parts."""

import csv

import pytest

from edge_backbones.report import collect
from edge_backbones.report.records import load_results


@pytest.fixture(scope="module")
def sam_report(tiny_sam_export, tmp_path_factory):
    from edge_backbones.cli import main

    _, artifacts, code, _, _ = tiny_sam_export
    assert code == 0
    out = tmp_path_factory.mktemp("sam_report")
    assert (
        main(
            [
                "report",
                "--artifacts",
                str(artifacts),
                "--out",
                str(out),
                "--threads",
                "1",
                "--runs",
                "3",
                "--warmup",
                "1",
                "--device-name",
                "here",
            ]
        )  # fmt: skip
        == 0
    )
    return out


def test_rows_carry_the_part_and_the_decoders_mask_iou(sam_report):
    rows = load_results(str(sam_report / "here.json"))["rows"]
    parts = sorted((r["mode"], r["sam"]["part"]) for r in rows)
    assert parts == [
        ("fp16", "decoder"), ("fp16", "encoder"),
        ("fp32", "decoder"), ("fp32", "encoder"),
    ]  # fmt: skip
    (decoder,) = [
        r for r in rows if r["mode"] == "fp32" and r["sam"]["part"] == "decoder"
    ]
    assert decoder["sam"]["mask_iou_mean"] == pytest.approx(1.0, abs=1e-3)
    # 32 held-out prompts, each scored alone and again with the float
    # model's own mask as its mask input
    assert decoder["sam"]["prompts"] == 64
    # timed through its five-input signature, one prompt per run
    assert decoder["latency_ms"]["runs"] == 3
    assert decoder["input"]["shape"] == [1, 8, 8, 32]
    # no Keras baseline row for the decoder (none for a pair's part)
    assert not [r for r in rows if r["kind"] == "keras"]


def test_the_sam_table_pairs_encoder_and_decoder(sam_report):
    text = (sam_report / "report.md").read_text()
    table = text.split("### Segment Anything per mode (here)")[1]
    table = table.split("###")[0]
    lines = [line for line in table.splitlines() if line.startswith("| tiny")]
    assert [line.split(" | ")[1] for line in lines] == ["fp32", "fp16"]
    cells = lines[0].split(" | ")
    encoder_ms, decoder_ms, ratio = map(float, cells[4:7])
    # from the unrounded medians; the cells show them to 0.01 ms
    assert ratio == pytest.approx(decoder_ms / encoder_ms, rel=0.1)
    assert cells[7] == "1.0000"  # mask IoU mean of the fp32 decoder
    with open(sam_report / "report.csv") as f:
        records = list(csv.DictReader(f))
    assert {r["sam_part"] for r in records} == {"encoder", "decoder"}


def test_sam_fields_of_other_models():
    assert collect.sam_fields({"task": {"kind": "segmentation"}}) is None
    assert collect.sam_fields({}) is None
