"""Which int8 layers flip the segmenter's classes: `int8_mixed` of the
512x512 MiT-B0 SegFormer (150 classes, random transformers weights, seed
0) exported once per candidate float list, each scored on the held-out
photos against PyTorch's class maps.

Each variant keeps the given layers (Keras layer names, as
`--float-layers` matches them) float on top of the scheme's own float
lists. Mask agreement is given over all pixels and over the pixels whose
float top-1/top-2 logit margin exceeds each threshold (random weights
leave 150 logits nearly tied, so a reader can tell a tie from an int8
error). Writes `float_layers.json` in OUT (strict JSON, atomically).

    nice python benchmarks/segmentation/float_layers.py OUT \
        [--variant NAME=layer,layer ...]
"""

import argparse
import os
import pathlib
import sys
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from benchmarks.segmentation.measure import (  # noqa: E402
    SIZE,
    _checkpoint,
    torch_logits_nhwc,
)

# top-1/top-2 margins of PyTorch's logits the agreement is also given at
MARGINS = (0.0, 0.005, 0.01, 0.02, 0.05)
# Keras layer names as the converter names their tensors (`linear_fuse_1`);
# the classifier's output tensor is the graph's `logits` output, named
# after the signature
LOGITS_NODE = "StatefulPartitionedCall:1"
VARIANTS = {
    "scheme only": (),
    "classifier": (LOGITS_NODE,),
    "linear_fuse": ("linear_fuse_1/",),
    "linear_c projections": tuple(f"linear_c{i}_1/" for i in range(1, 5)),
    "resizes": ("_resize_1/",),
    "decode head": (
        *(f"linear_c{i}_1/" for i in range(1, 5)),
        "_resize_1/",
        "linear_fuse_1/",
        LOGITS_NODE,
    ),
}


def margin_agreement(classes, torch_logits, margins=MARGINS):
    """{margin: (agreement, share of pixels)} over the pixels whose float
    top-1 minus top-2 logit exceeds each margin."""
    top2 = np.sort(torch_logits, axis=-1)[..., -2:]
    margin = top2[..., 1] - top2[..., 0]
    same = classes == torch_logits.argmax(-1)
    found = {}
    for m in margins:
        keep = margin > m
        found[str(m)] = {
            "agreement": float(same[keep].mean()) if keep.any() else None,
            "pixels": float(keep.mean()),
        }
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=pathlib.Path)
    parser.add_argument("--max-images", type=int, default=16)
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="NAME=layer,layer (default: the built-in list)",
    )
    args = parser.parse_args(argv)

    from edge_backbones.atomic_io import write_json_atomic
    from edge_backbones.exporter import export
    from edge_backbones.exporter.calibration import calibration_set
    from edge_backbones.runtime.edge_model import EdgeModel

    variants = dict(VARIANTS)
    if args.variant:
        variants = {
            name: tuple(filter(None, layers.split(",")))
            for name, layers in (v.split("=", 1) for v in args.variant)
        }
    args.out.mkdir(parents=True, exist_ok=True)
    folder = args.out / "checkpoint"
    torch_model = _checkpoint(folder)
    calibration = str(REPO / "calibration")
    photos = calibration_set(calibration, 0, 0.25, args.max_images).paths(
        "holdout"
    )
    inputs = None
    torch_logits = None
    result = {
        "image_size": SIZE,
        "images": len(photos),
        "margins": list(MARGINS),
        "variants": {},
    }
    for index, (name, layers) in enumerate(variants.items()):
        started = time.perf_counter()
        (record,) = export(
            str(folder),
            image_size=SIZE,
            modes=["int8_mixed"],
            calibration=calibration,
            max_images=args.max_images,
            out=str(args.out / f"variant{index}"),
            name="segformer_b0_random",
            thresholds={"int8_mixed": 1e-6},
            mask_thresholds={"int8_mixed": 1e-6},
            float_layers=list(layers) or None,
        )
        model = EdgeModel(record.path, num_threads=2)
        if inputs is None:
            inputs = np.stack([model.preprocess(p) for p in photos])
            torch_logits = torch_logits_nhwc(torch_model, inputs)
        out = model.run_batch(list(inputs))
        per_image = [
            float(np.mean(o == t.argmax(-1)))
            for o, t in zip(out["classes"], torch_logits, strict=True)
        ]
        row = {
            "float_layers": list(layers),
            "ops": record.metadata["graph"]["op_count"],
            "size_bytes": record.size_bytes,
            "mask_agreement_mean": float(np.mean(per_image)),
            "mask_agreement_min": float(np.min(per_image)),
            "by_margin": margin_agreement(out["classes"], torch_logits),
            "logits_max_abs_vs_pytorch": float(
                np.max(np.abs(out["logits"] - torch_logits))
            ),
            "seconds": round(time.perf_counter() - started, 1),
        }
        result["variants"][name] = row
        print(f"{name}: {row}", flush=True)
        write_json_atomic(args.out / "float_layers.json", result, indent=1)
        os.remove(record.path)
    result["load_average"] = list(os.getloadavg())
    write_json_atomic(args.out / "float_layers.json", result, indent=1)


if __name__ == "__main__":
    main()
