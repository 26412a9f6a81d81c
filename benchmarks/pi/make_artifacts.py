"""Exports the tiny artifacts the emulated Pi runs, and records x86 outputs.

Runs on the x86 host (needs the `export` extra). Writes into OUT:
- `artifacts/`: a tiny MiT and a tiny ViTDet (random weights, seed 0) in
  fp32, `cpu` (dynamic int8), full int8 and `npu` (int8 end to end),
  calibrated and verified on the bundled photos like any export;
- `inputs.npz`: the held-out photos preprocessed for each model;
- `x86.npz` + `x86.json`: every artifact's outputs on those inputs, through
  each delegate, on this machine (the reference the Pi is compared with).

    python benchmarks/pi/make_artifacts.py OUT
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
MODES = ["fp32", "int8"]
TARGETS = ["cpu", "npu"]
# Random weights spread activations wider than trained ones; these gates
# catch a broken export, they are not quality figures. Full int8 of the
# random tiny ViTDet measured cosine 0.84 on x86 (int8 layer norms and
# softmax over 16 channels); what matters here is that ARM computes what
# x86 computes.
THRESHOLDS = {"int8": 0.8, "npu": 0.8, "cpu": 0.99}


def export_all(out):
    from edge_backbones.export import export

    paths = []
    for name, (preset, config) in TINY_MODELS.items():
        records = export(
            preset,
            image_size=IMAGE_SIZE,
            modes=MODES,
            targets=TARGETS,
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=pathlib.Path)
    args = parser.parse_args(argv)
    artifacts = args.out / "artifacts"
    paths = export_all(artifacts)
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
