"""The NPU stage's segmenter check (.ci/stages/npu.sh runs it): a tiny
SegFormer's `npu` artifact (a16w8) compiles for SM8650 and SM8750 with
every op on the NPU in one partition, and its class maps in QNN's
simulated HTP are scored against the float model's (mask agreement,
gated by the target's `min_mask_agreement`). Simulated figures are
numerics, never device speed."""

import json
import os

import pytest

from tests.npu.conftest import needs_npu_extra

pytestmark = [pytest.mark.npu_stage, needs_npu_extra]

SOCS = ("SM8650", "SM8750")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory, calibration_dir):
    pytest.importorskip("transformers")
    from edge_backbones.exporter.pipeline import export
    from tests.export.test_segformer_export import _save

    checkpoint = _save(tmp_path_factory.mktemp("segformer_tiny"))
    records = export(
        str(checkpoint),
        image_size=64,
        targets="npu",
        socs=",".join(SOCS),
        calibration=str(calibration_dir),
        out=str(tmp_path_factory.mktemp("seg_npu")),
        name="seg",
        max_images=16,
        # random tiny weights at 64x64 (16x16 class maps): gates on a
        # broken conversion, not quality (the CPU run measured a worst
        # image's mask agreement of 0.988)
        thresholds={"npu": 0.9},
        mask_thresholds={"npu": 0.95},
    )
    return {r.mode: r for r in records}


def _compiled_for(records, soc):
    (record,) = [
        r for r in records.values() if r.path.endswith(f"_{soc}.tflite")
    ]
    return record


def _json(path):
    with open(os.path.splitext(path)[0] + ".json") as f:
        return json.load(f)


def test_every_segmenter_op_runs_on_the_npu(compiled):
    source = _json(compiled["npu"].path)
    for soc in SOCS:
        record = _compiled_for(compiled, soc)
        block = _json(record.path)["compiled"]
        (partition,) = block["partitions"]
        assert partition["ops_on_npu"] == partition["ops_total"], soc
        assert partition["ops_total"] == source["graph"]["op_count"], soc
        assert block["cpu_op_kinds"] == {}, soc


def test_simulated_masks_agree_with_the_float_model(compiled):
    cpu = _json(compiled["npu"].path)["task"]["verification"]
    for soc in SOCS:
        record = _compiled_for(compiled, soc)
        task = _json(record.path)["task"]
        masks = task["verification"]
        print(f"{soc}: simulated mask agreement {masks['mask_agreement']}, "
              f"CPU {cpu['mask_agreement']}")  # fmt: skip
        gate = masks["min_mask_agreement"]
        assert gate == cpu["min_mask_agreement"] and gate is not None
        assert masks["mask_agreement"]["min"] >= gate
        # the simulated HTP computes what LiteRT's CPU computes, to the
        # rounding of a few boundary pixels
        assert masks["mask_agreement"]["mean"] >= (
            cpu["mask_agreement"]["mean"] - 0.02
        )
        assert task["classes_in_graph"] is False  # no int16 ARG_MAX
