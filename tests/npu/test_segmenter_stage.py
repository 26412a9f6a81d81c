"""The NPU stage's segmenter check (.ci/stages/npu.sh runs it): a tiny
SegFormer's `npu` (a16w8) and `npu_int8` (full int8) artifacts compile
for SM8650 and SM8750 with every op on the NPU in one partition, and
their class maps in QNN's simulated HTP are scored against the float
model's (mask agreement, gated by each target's `min_mask_agreement`).
Simulated figures are numerics, never device speed."""

import json
import os

import pytest

from tests.npu.conftest import needs_npu_extra

pytestmark = [pytest.mark.npu_stage, needs_npu_extra]

SOCS = ("SM8650", "SM8750")
TARGETS = ("npu", "npu_int8")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory, calibration_dir):
    pytest.importorskip("transformers")
    from edge_backbones.exporter.pipeline import export
    from tests.export.test_segformer_export import _save

    checkpoint = _save(tmp_path_factory.mktemp("segformer_tiny"))
    records = export(
        str(checkpoint),
        image_size=64,
        targets=",".join(TARGETS),
        socs=",".join(SOCS),
        calibration=str(calibration_dir),
        out=str(tmp_path_factory.mktemp("seg_npu")),
        name="seg",
        max_images=16,
        # random tiny weights at 64x64 (16x16 class maps): gates on a
        # broken conversion, not quality (the CPU run measured a worst
        # image's mask agreement of 0.988)
        thresholds=dict.fromkeys(TARGETS, 0.9),
        mask_thresholds=dict.fromkeys(TARGETS, 0.95),
    )
    return {r.mode: r for r in records}


def _compiled_for(records, soc, target="npu"):
    return records[f"{target}@{soc}"]


def _json(path):
    with open(os.path.splitext(path)[0] + ".json") as f:
        return json.load(f)


@pytest.mark.parametrize("target", TARGETS)
def test_every_segmenter_op_runs_on_the_npu(compiled, target):
    source = _json(compiled[target].path)
    for soc in SOCS:
        record = _compiled_for(compiled, soc, target)
        block = _json(record.path)["compiled"]
        (partition,) = block["partitions"]
        assert partition["ops_on_npu"] == partition["ops_total"], soc
        assert partition["ops_total"] == source["graph"]["op_count"], soc
        assert block["cpu_op_kinds"] == {}, soc


@pytest.mark.parametrize("target", TARGETS)
def test_simulated_masks_agree_with_the_float_model(compiled, target):
    cpu = _json(compiled[target].path)["task"]["verification"]
    for soc in SOCS:
        record = _compiled_for(compiled, soc, target)
        task = _json(record.path)["task"]
        masks = task["verification"]
        print(
            f"{target} {soc}: simulated mask agreement "
            f"{masks['mask_agreement']}, CPU {cpu['mask_agreement']}"
        )
        gate = masks["min_mask_agreement"]
        assert gate == cpu["min_mask_agreement"] and gate is not None
        assert masks["mask_agreement"]["min"] >= gate
        # the simulated HTP computes what LiteRT's CPU computes, to the
        # rounding of a few boundary pixels
        assert masks["mask_agreement"]["mean"] >= (
            cpu["mask_agreement"]["mean"] - 0.02
        )
        assert task["classes_in_graph"] is False  # no int16 ARG_MAX
