"""Exports the tiny artifacts the emulated Pi runs, and records x86 outputs.

Runs on the x86 host (needs the `export` extra). Writes into OUT:
- `artifacts/`: a tiny MiT and a tiny ViTDet (random weights, seed 0) in
  fp32, `cpu` (dynamic int8), full int8, `npu` (int16 activations and
  I/O) and `npu_int8` (int8 end to end),
  calibrated and verified on the bundled photos like any export;
- `inputs.npz`: the held-out photos preprocessed for each model;
- `x86.npz` + `x86.json`: every artifact's outputs on those inputs, through
  each delegate, on this machine (the reference the Pi is compared with);
- `segmenter/`: a tiny SegFormer segmenter (the tiny MiT under the B0
  decode head, random weights) in fp32, `int8_mixed` and `cpu`, with its
  held-out inputs and x86 outputs (`classes` among them): the Pi's class
  maps are scored by mask agreement with x86's (tests/device);
- `legacy/fc_int8_no_bias.tflite`: one int8 FULLY_CONNECTED of the MiT
  `npu_int8` graph with its bias removed, as exports made before
  export/fc_bias.py wrote it (tflite-runtime 2.14 crashes on it on aarch64;
  the runtime must refuse it).

With --real-mit, MiT-B0 at its real widths and depths (random weights,
128x128; fp32, int8, npu, npu_int8) instead: the size where ARM and x86 int8
outputs part most (docs/raspberry_pi.md), too slow for every CI run.

    python benchmarks/pi/make_artifacts.py OUT [--real-mit]
"""

import argparse
import os
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from edge_backbones.atomic_io import write_file_atomic  # noqa: E402
from edge_backbones.runtime import parity  # noqa: E402

# The smallest configurations that keep each family's op mix (overlapping
# patch embeddings, spatial-reduction attention, Mix-FFN; windowed and
# global attention with relative positions, the neck).
TINY_MODELS = {
    "mit_tiny": (
        "mit_b0",
        {
            "depths": [1, 1, 1, 1],
            "num_layers": 4,
            "blockwise_num_heads": [1, 1, 2, 2],
            "blockwise_sr_ratios": [4, 2, 1, 1],
            "max_drop_path_rate": 0.0,
            "patch_sizes": [7, 3, 3, 3],
            "strides": [4, 2, 2, 2],
            "hidden_dims": [8, 16, 24, 32],
        },
    ),
    "vitdet_tiny": (
        "sam_vit_base",
        {
            "hidden_size": 16,
            "num_layers": 2,
            "intermediate_dim": 32,
            "num_heads": 2,
            "global_attention_layer_indices": [1],
            "patch_size": 8,
            "num_output_channels": 16,
            "window_size": 4,
        },
    ),
}
IMAGE_SIZE = 64
REAL_MIT = {"mit_b0": ("mit_b0", {})}
REAL_MIT_SIZE = 128
MODES = ["fp32", "int8"]
TARGETS = ["cpu", "npu", "npu_int8"]
# Random weights spread activations wider than trained ones; these gates
# catch a broken export, they are not quality figures. Full int8 of the
# random tiny ViTDet measured cosine 0.84 on x86 (int8 layer norms and
# softmax over 16 channels); what matters here is that ARM computes what
# x86 computes.
THRESHOLDS = {"int8": 0.8, "npu": 0.8, "npu_int8": 0.8, "cpu": 0.99}


def export_all(out, models=TINY_MODELS, image_size=IMAGE_SIZE, targets=TARGETS):
    from edge_backbones.exporter import export

    paths = []
    for name, (preset, config) in models.items():
        records = export(
            preset,
            image_size=image_size,
            modes=MODES,
            targets=targets,
            calibration=REPO / "calibration",
            out=out,
            random_weights=True,
            thresholds=THRESHOLDS,
            config=config,
            name=name,
            max_images=16,
        )
        paths += [record.path for record in records]
    return paths


SEGMENTER = ("segformer_b0_ade20k_512", TINY_MODELS["mit_tiny"][1])
SEGMENTER_MODES = ["fp32", "int8_mixed"]
SEGMENTER_TARGETS = ["cpu"]


def export_segmenter(out):
    """The tiny segmenter's artifacts, inputs and x86 outputs in `out`."""
    from edge_backbones.exporter import export

    preset, config = SEGMENTER
    records = export(
        preset,
        image_size=IMAGE_SIZE,
        modes=SEGMENTER_MODES,
        targets=SEGMENTER_TARGETS,
        calibration=REPO / "calibration",
        out=out / "artifacts",
        random_weights=True,
        config=config,
        name="segformer_tiny",
        max_images=16,
        # random weights: gates that catch a broken export only
        thresholds={"int8_mixed": 0.9, "cpu": 0.9},
        mask_thresholds={"int8_mixed": 0.9, "cpu": 0.9},
    )
    paths = [record.path for record in records]
    inputs = parity.holdout_inputs(paths, REPO / "calibration")
    parity.save_arrays(out / "inputs.npz", inputs)
    run = parity.run_artifacts(paths, inputs, backend="litert")
    parity.save_run(out, "x86", run)
    return paths


def write_bias_less_fc(artifact, out):
    """`out`: the first FULLY_CONNECTED of `artifact` alone, bias removed."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    from edge_backbones.runtime.op_profile import one_op_model

    model = flatbuffer_utils.read_model(str(artifact))
    index = next(
        i
        for i, op in enumerate(model.subgraphs[0].operators)
        if model.operatorCodes[op.opcodeIndex].builtinCode
        == schema.BuiltinOperator.FULLY_CONNECTED
    )
    packed, _ = one_op_model(model, index)
    cut = schema.ModelT.InitFromPackedBuf(bytearray(packed), 0)
    cut.metadata = []  # they point at buffers the cut dropped
    (op,) = cut.subgraphs[0].operators
    assert op.inputs[2] >= 0, "export/fc_bias.py gave it a bias"
    op.inputs = [op.inputs[0], op.inputs[1], -1]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(flatbuffer_utils.convert_object_to_bytearray(cut))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=pathlib.Path)
    parser.add_argument("--real-mit", action="store_true")
    args = parser.parse_args(argv)
    artifacts = args.out / "artifacts"
    if args.real_mit:
        paths = export_all(
            artifacts, REAL_MIT, REAL_MIT_SIZE, ["npu", "npu_int8"]
        )
    else:
        paths = export_all(artifacts)
        write_bias_less_fc(
            artifacts / f"mit_tiny_{IMAGE_SIZE}x{IMAGE_SIZE}_npu_int8.tflite",
            args.out / "legacy" / "fc_int8_no_bias.tflite",
        )
        export_segmenter(args.out / "segmenter")
    inputs = parity.holdout_inputs(paths, REPO / "calibration")
    parity.save_arrays(args.out / "inputs.npz", inputs)
    run = parity.run_artifacts(paths, inputs, backend="litert")
    parity.save_run(args.out, "x86", run)
    write_file_atomic(
        os.fspath(args.out / "README.txt"),
        "Made by benchmarks/pi/make_artifacts.py; see its docstring.\n",
    )
    print(f"{len(paths)} artifacts, x86 outputs in {args.out}")


if __name__ == "__main__":
    main()
