"""The SAM pair on the simulated NPU (.ci/stages/npu.sh runs these).

A tiny random `SamModel` (patch 16: a 32x32 token grid) is exported at
512x512 as the `npu` target (a16w8, integer I/O) on 4 photos, the encoder
compiled for SM8650 by the export (`--soc`) and gated on its simulated
numerics; it must have every op on the HTP in one partition. So must the
decoder (its point encoding's sines as MUL/ADD/SUB:
`models.layers.polynomial_sin`), and its simulated masks must reach the
registry's `npu` gates against the float Keras decoder. Simulated figures
are numerics, never device speed.
"""

import json

import numpy as np
import pytest

from tests.npu.conftest import needs_npu_extra

pytestmark = [pytest.mark.npu_stage, needs_npu_extra]

SIZE = 512


def _json(path):
    with open(str(path)[: -len(".tflite")] + ".json") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def compiled_pair(tmp_path_factory, calibration_dir):
    from edge_backbones.exporter.pipeline import export
    from edge_backbones.npu.compile import compile_for_soc
    from edge_backbones.npu.socs import parse_socs
    from tests.tiny import save_tiny_sam_model

    checkpoint = tmp_path_factory.mktemp("sam") / "tiny_sam"
    save_tiny_sam_model(str(checkpoint), patch_size=16)
    out = tmp_path_factory.mktemp("sam_npu")
    export(
        str(checkpoint),
        image_size=SIZE,
        targets="npu",
        socs="SM8650",
        calibration=str(calibration_dir),
        max_images=4,
        out=str(out),
        # random weights on a toy: only a broken conversion falls this low
        thresholds={"npu": 0.95},
    )
    stem = f"tiny_sam_{SIZE}x{SIZE}"
    decoder = out / f"{stem}_decoder_npu.tflite"
    (soc,) = parse_socs("SM8650")
    compiled_decoder = compile_for_soc(str(decoder), soc, str(out)).path
    return (
        checkpoint,
        out / f"{stem}_npu.tflite",
        out / f"{stem}_npu_SM8650.tflite",
        decoder,
        compiled_decoder,
    )


def test_every_op_of_the_encoder_runs_on_the_htp(compiled_pair):
    _, source, compiled, *_ = compiled_pair
    block = _json(compiled)["compiled"]
    (partition,) = block["partitions"]
    assert partition["ops_on_npu"] == partition["ops_total"]
    assert partition["ops_total"] == _json(source)["graph"]["op_count"]
    assert block["cpu_op_kinds"] == {}
    # simulated vs float, gated by the export
    assert _json(compiled)["fidelity"]["min_cosine"] == 0.95


def test_every_op_of_the_decoder_runs_on_the_htp(compiled_pair):
    *_, decoder, compiled_decoder = compiled_pair
    block = _json(compiled_decoder)["compiled"]
    (partition,) = block["partitions"]
    assert partition["ops_on_npu"] == partition["ops_total"]
    assert partition["ops_total"] == _json(decoder)["graph"]["op_count"]
    assert block["cpu_op_kinds"] == {}
    # the int16x8 graph has no SIN: the sines are polynomial
    assert "SIN" not in _json(decoder)["graph"]["op_histogram"]


def test_simulated_decoder_masks_meet_the_npu_gate(compiled_pair):
    from edge_backbones.core.modes import sam_decoder_plans
    from edge_backbones.exporter import sam as sam_export
    from edge_backbones.models.sam import SAMBackbone
    from edge_backbones.runtime.edge_model import EdgeModel

    checkpoint, _, encoder, _, compiled_decoder = compiled_pair
    sam = SAMBackbone.from_preset(str(checkpoint), image_shape=(SIZE, SIZE, 3))
    float_decoder = sam.decoder_model(6)
    h, w, _ = sam.embedding_shape
    rng = np.random.default_rng(0)
    # the simulated encoder's embeddings feed both decoders
    (embeddings,) = EdgeModel(encoder)(
        rng.normal(size=(SIZE, SIZE, 3)).astype(np.float32)
    ).values()
    coords, labels = sam_export.prompt_set((SIZE, SIZE), 4, 8, seed=1)
    feeds = [
        sam_export._decoder_feed(embeddings, c, lab, h, w)
        for c, lab in zip(coords, labels, strict=True)
    ]
    reference = [
        {k: np.asarray(v) for k, v in float_decoder(feed).items()}
        for feed in feeds
    ]
    measured = sam_export.verify_decoder(compiled_decoder, reference, feeds)
    gate = sam_decoder_plans(["npu"])["npu"]
    print(
        f"simulated npu decoder at {SIZE}: {measured['mask_iou']}, "
        f"IoU-prediction error {measured['iou_prediction_max_error']:.3g}"
    )
    assert sam_export._failed_gates(gate, measured) == []
