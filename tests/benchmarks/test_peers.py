"""The peers comparison (benchmarks/peers): rows, error rows, fidelity.

The end-to-end test runs a tiny SegFormer at 64x64 through our fp32
export, litert-torch fp32, ai-edge-quantizer on it and a peer that
raises; it needs the `bench` extra (litert-torch, ai-edge-quantizer) and
skips without it. The level-matching and README tests need numpy only.
"""

import argparse

import numpy as np
import pytest

from benchmarks.peers import measure, report
from edge_backbones.atomic_io import loads_json_strict
from edge_backbones.errors import FidelityError, InputError

TINY = {
    "hidden_sizes": [8, 16, 24, 32],
    "depths": [1, 1, 1, 1],
    "num_attention_heads": [1, 1, 1, 1],
    "decoder_hidden_size": 32,
}
CHANNELS = {"P1": 8, "P2": 16, "P3": 24, "P4": 32}
# the tiny segmentation checkpoint's classes
SEGMENTER_CLASSES = 5


def _levels(rng):
    return {
        name: rng.standard_normal((2, 64 // s, 64 // s, c)).astype("f4")
        for (name, c), s in zip(CHANNELS.items(), (4, 8, 16, 32), strict=True)
    }


def test_outputs_are_matched_to_levels_by_shape_not_order():
    reference = _levels(np.random.default_rng(0))
    # a peer names its outputs its own way, in another order
    outputs = {
        "output_0": reference["P3"],
        "output_1": reference["P1"],
        "output_2": reference["P4"],
        "output_3": reference["P2"],
    }
    matched = measure.match_levels(outputs, reference)
    for name, ref in reference.items():
        assert matched[name] is ref


def test_two_outputs_of_one_shape_cannot_be_matched():
    reference = _levels(np.random.default_rng(0))
    outputs = {f"o{i}": v for i, v in enumerate(reference.values())}
    outputs["extra"] = reference["P2"] + 1
    with pytest.raises(FidelityError, match="level P2"):
        measure.match_levels(outputs, reference)


def test_a_peer_that_raises_gives_a_row_per_mode_with_its_error():
    from benchmarks.peers import peers, run

    def broken(context):
        raise ImportError("No module named 'litert_torch'")

    def partial(context):
        return {"a": "a.tflite", "b": ValueError("b does not convert")}

    context = peers.Context("ckpt", (64, 64), None, None, "work")
    built = peers.build_all(
        context,
        (peers.Peer("broken", ("x", "y"), broken),
         peers.Peer("partial", ("a", "b", "c"), partial)),
        log=lambda line: None,
    )  # fmt: skip
    assert [(p.tool, mode) for p, mode, _ in built] == [
        ("broken", "x"), ("broken", "y"),
        ("partial", "a"), ("partial", "b"), ("partial", "c"),
    ]  # fmt: skip
    rows = [run.measure_row(p, m, b, None, None, 1) for p, m, b in built]
    assert [r["error"] for r in rows if r["tool"] == "broken"] == [
        "ImportError: No module named 'litert_torch'"
    ] * 2
    # a file that is not there fails when measured, as its own row
    assert rows[2]["error"].startswith("measuring: ")
    assert rows[3]["error"] == "ValueError: b does not convert"
    assert rows[4]["error"] == "RuntimeError: partial made no c artifact"
    assert all(r["path"] is None for r in rows if r["error"])
    # a peer built on a failed one says so
    assert isinstance(context.built[("broken", "x")], ImportError)


def test_mask_agreement_is_the_share_of_pixels_with_pytorchs_argmax():
    rng = np.random.default_rng(0)
    reference = rng.standard_normal((2, 4, 5, 3)).astype("f4")
    logits = reference.copy()
    # image 0: 3 of 20 pixels take another class; image 1 keeps all
    for i, j in ((0, 0), (1, 2), (3, 4)):
        logits[0, i, j] = np.roll(reference[0, i, j], 1)
    masks = measure.mask_agreement(logits, reference)
    assert masks == {"mean": pytest.approx(37 / 40), "min": 17 / 20}


def test_segmentation_rows_get_a_mask_agreement_column():
    row = {
        **_result_stub()["rows"][0],
        "mask_agreement": {"mean": 0.9555, "min": 0.9219},
    }
    text = report.table([row, _result_stub()["rows"][1]])
    assert "| mask agreement vs PyTorch (mean / worst image) |" in text
    assert text.endswith("failed: ValueError: no / way | | | | | |")
    assert "| 1.00000 | 120.0 | 95.55 % / 92.19 % |" in text


def _result_stub():
    row = {
        "tool": "edge_backbones", "mode": "fp32", "error": None, "ops": 9,
        "whole_graph_on_xnnpack": True, "latency_vs_our_fp32": 1.0,
        "worst_cosine": 1.0, "worst_sqnr_db": 120.0,
    }  # fmt: skip
    broken = {"tool": "peer", "mode": "int8", "error": "ValueError: no | way"}
    return {
        "rows": [row, broken],
        "image_size": [64, 64],
        "command": "python -m benchmarks.peers --size 64",
        "cpu": {"model": "cpu", "cores": 2, "flags": [], "load_average": [0]},
        "versions": {"ai-edge-litert": "2.3.0"},
        "args": {"threads": 2, "rounds": 1, "runs": 2},
        "timing_note": "noisy.",
    }


def test_readme_table_is_replaced_between_its_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(
        f"before\n{report.README_BEGIN}\nold table\n{report.README_END}\nafter"
    )
    report.replace_readme_block(readme, _result_stub())
    text = readme.read_text()
    assert text.startswith("before\n") and text.endswith("\nafter")
    assert "old table" not in text
    assert "| edge_backbones | `fp32` | 9 | yes | 1.00 | 1.00000 |" in text
    # an error row keeps its message, its pipe escaped out of the table
    assert "| peer | `int8` | failed: ValueError: no / way |" in text
    assert "`python -m benchmarks.peers --size 64` at 64×64" in text


def test_readme_without_markers_is_an_input_error(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("no table here\n")
    with pytest.raises(InputError, match="no peers table block"):
        report.replace_readme_block(readme, _result_stub())
    assert readme.read_text() == "no table here\n"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, calibration_dir):
    reason = 'needs the bench extra: pip install -e ".[bench]"'
    pytest.importorskip("litert_torch", reason=reason)
    pytest.importorskip("ai_edge_quantizer", reason=reason)
    pytest.importorskip("tensorflow", reason="needs the export extra")
    from benchmarks.peers import peers, run

    def broken(context):
        raise RuntimeError("this peer cannot convert SegFormer")

    chosen = (
        peers.Peer(
            peers.OURS, ("fp32",), lambda c: peers.export_ours(c, ("fp32",), ())
        ),
        peers.PEERS[1],  # litert-torch fp32
        peers.Peer("broken-tool", ("int8",), broken),
        peers.PEERS[4],  # litert-torch -> ai-edge-quantizer
    )
    work = tmp_path_factory.mktemp("peers")
    args = argparse.Namespace(
        size="64", calibration=str(calibration_dir), threads=1, rounds=1,
        runs=2, warmup=0, work_dir=str(work), config=TINY,
        command="python -m benchmarks.peers --size 64",
    )  # fmt: skip
    result = run.run(args, peers=chosen)
    stem = run.write(result, str(work / "out"))
    return result, work, stem


def _row(result, tool, mode):
    return next(
        r for r in result["rows"] if r["tool"] == tool and r["mode"] == mode
    )


@pytest.mark.peers_stage
def test_every_mode_is_a_row_and_a_failing_peer_is_a_row(tiny_run):
    result, _, stem = tiny_run
    keys = [(r["tool"], r["mode"]) for r in result["rows"]]
    assert keys == [
        ("edge_backbones", "fp32"),
        ("litert-torch", "fp32"),
        ("broken-tool", "int8"),
        ("litert-torch → ai-edge-quantizer", "static_wi8_ai8"),
        ("litert-torch → ai-edge-quantizer", "dynamic_wi8_afp32"),
    ]
    broken = _row(result, "broken-tool", "int8")
    assert broken["error"] == (
        "RuntimeError: this peer cannot convert SegFormer"
    )
    assert broken["path"] is None
    for row in result["rows"]:
        if row is broken:
            continue
        assert row["error"] is None, row["error"]
        assert row["ops"] > 0 and row["size_bytes"] > 0
        assert isinstance(row["whole_graph_on_xnnpack"], bool)
        assert row["latency_ms"]["median"] > 0
        assert set(row["fidelity"]["levels"]) == set(CHANNELS)
    assert _row(result, "edge_backbones", "fp32")["latency_vs_our_fp32"] == 1
    # Google's static recipe gives int8 I/O
    static = _row(result, "litert-torch → ai-edge-quantizer", "static_wi8_ai8")
    assert static["input_dtype"] == "int8"
    with open(stem + ".json") as f:
        assert loads_json_strict(f.read())["rows"][2]["error"]
    with open(stem + ".png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def _torch_levels_nhwc(folder, images):
    """The checkpoint through transformers itself, NCHW in, NHWC out."""
    import torch
    import transformers

    model = transformers.SegformerModel.from_pretrained(folder).eval()
    with torch.no_grad():
        pixels = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
        hidden = model(pixels, output_hidden_states=True).hidden_states
    return {
        name: h.permute(0, 2, 3, 1).numpy()
        for name, h in zip(CHANNELS, hidden, strict=True)
    }


@pytest.mark.peers_stage
@pytest.mark.parametrize(
    "tool, mode",
    [
        ("edge_backbones", "fp32"),
        ("litert-torch", "fp32"),
        # lossy: its levels' cosines differ, so a level named wrongly shows
        ("litert-torch → ai-edge-quantizer", "static_wi8_ai8"),
    ],
)
def test_fidelity_is_against_pytorch_level_by_level(tiny_run, tool, mode):
    from benchmarks.peers.checkpoint import load_inputs
    from edge_backbones.runtime import EdgeModel

    result, work, _ = tiny_run
    row = _row(result, tool, mode)
    inputs = load_inputs(result["calibration"], (64, 64))
    reference = _torch_levels_nhwc(
        str(work / "segformer_b0_seed0"), inputs.holdout
    )
    model = EdgeModel(str(work / row["path"]))
    outputs = [model(x) for x in inputs.holdout]
    for name, ref in reference.items():
        # the output with this level's channels, whatever its name
        (out,) = [
            np.concatenate([o[k] for o in outputs])
            for k in outputs[0]
            if outputs[0][k].shape[-1] == CHANNELS[name]
        ]
        ref, out = ref.reshape(len(ref), -1), out.reshape(len(out), -1)
        cosines = np.sum(ref * out, 1) / (
            np.linalg.norm(ref, axis=1) * np.linalg.norm(out, axis=1)
        )
        figures = row["fidelity"]["levels"][name]
        assert figures["cosine"] == pytest.approx(cosines.min(), abs=2e-6)
        if mode == "fp32":  # the same model
            assert figures["cosine"] > 0.9999


@pytest.fixture(scope="module")
def tiny_segmentation_run(tmp_path_factory, calibration_dir):
    reason = 'needs the bench extra: pip install -e ".[bench]"'
    pytest.importorskip("litert_torch", reason=reason)
    pytest.importorskip("ai_edge_quantizer", reason=reason)
    pytest.importorskip("tensorflow", reason="needs the export extra")
    from benchmarks.peers import peers, run

    chosen = (
        peers.Peer(
            peers.OURS,
            ("fp32", "int8_mixed"),
            lambda c: peers.export_ours(c, ("fp32", "int8_mixed"), ()),
        ),
        peers.PEERS[1],  # litert-torch fp32
        peers.PEERS[2],  # litert-torch PT2E static int8
        peers.PEERS[4],  # litert-torch -> ai-edge-quantizer
    )
    work = tmp_path_factory.mktemp("peers_segmentation")
    args = argparse.Namespace(
        size="64", calibration=str(calibration_dir), threads=1, rounds=1,
        runs=2, warmup=0, work_dir=str(work),
        config={**TINY, "num_labels": SEGMENTER_CLASSES},
        task="segmentation",
        command="python -m benchmarks.peers --task segmentation --size 64",
    )  # fmt: skip
    result = run.run(args, peers=chosen)
    stem = run.write(result, str(work / "out"))
    return result, work, stem


@pytest.mark.peers_stage
def test_segmentation_peers_are_scored_by_mask_agreement(
    tiny_segmentation_run,
):
    result, _, stem = tiny_segmentation_run
    assert stem.endswith("peers_segmentation_64x64")
    assert result["task"] == "segmentation"
    assert "SegformerForSemanticSegmentation" in result["checkpoint"]
    keys = [(r["tool"], r["mode"]) for r in result["rows"]]
    assert keys == [
        ("edge_backbones", "fp32"),
        ("edge_backbones", "int8_mixed"),
        ("litert-torch", "fp32"),
        ("litert-torch", "pt2e_static_int8"),
        ("litert-torch → ai-edge-quantizer", "static_wi8_ai8"),
        ("litert-torch → ai-edge-quantizer", "dynamic_wi8_afp32"),
    ]
    for row in result["rows"]:
        assert row["error"] is None, (row["tool"], row["mode"], row["error"])
        assert row["ops"] > 0
        assert isinstance(row["whole_graph_on_xnnpack"], bool)
        assert row["latency_vs_our_fp32"] > 0
        # the logits are the one output compared
        assert set(row["fidelity"]["levels"]) == {"logits"}
        masks = row["mask_agreement"]
        assert 0 < masks["min"] <= masks["mean"] <= 1
        if row["mode"] == "fp32":  # the same float model as PyTorch
            assert masks["min"] >= 0.999, row["tool"]
            assert row["worst_cosine"] > 0.9999
        else:  # quantized, not broken: most pixels keep their class
            assert masks["mean"] >= 0.5, (row["tool"], row["mode"])
    with open(stem + ".md") as f:
        page = f.read()
    assert "mask agreement vs PyTorch (mean / worst image)" in page


@pytest.mark.peers_stage
def test_segmentation_mask_agreement_is_pytorchs_argmax(tiny_segmentation_run):
    import torch
    import transformers

    from benchmarks.peers.checkpoint import load_inputs
    from edge_backbones.runtime import EdgeModel

    result, work, _ = tiny_segmentation_run
    inputs = load_inputs(result["calibration"], (64, 64))
    model = transformers.SegformerForSemanticSegmentation.from_pretrained(
        str(work / "segformer_b0_ade_seed0")
    ).eval()
    with torch.no_grad():
        pixels = torch.from_numpy(np.stack(inputs.holdout)).permute(0, 3, 1, 2)
        truth = model(pixel_values=pixels).logits.argmax(1).numpy()
    # a lossy row: its agreement is not 1, so a wrong reference shows
    row = _row(result, "litert-torch", "pt2e_static_int8")
    artifact = EdgeModel(str(work / row["path"]))
    (key,) = artifact.output_names
    shares = [
        np.mean(artifact(x)[key][0].argmax(-1) == t)
        for x, t in zip(inputs.holdout, truth, strict=True)
    ]
    assert row["mask_agreement"]["mean"] == pytest.approx(np.mean(shares))
    assert row["mask_agreement"]["min"] == pytest.approx(np.min(shares))
