"""SAM's figures for the note: fp32 pair vs transformers, decoder modes vs
float, decoder latency per prompt vs encoder latency.

    python -m benchmarks.sam.measure checkpoint DIR [--size 1024]
        a random Hugging Face `SamModel` (default config: ViT-B), seed 0
    python -m benchmarks.sam.measure export DIR OUT [--size N]
        [--modes fp32] [--calibration calibration]
    python -m benchmarks.sam.measure lean DIR OUT [--size N]
        the fp32 pair without the full-size float reference (less memory)
    python -m benchmarks.sam.measure parity DIR OUT [--size N]
        the exported fp32 pair vs transformers on the same prompts
    python -m benchmarks.sam.measure decoders DIR OUT --size 64
        --modes int8_mixed --calibration calibration [--no-mask-prompts]
        the decoder alone on the pipeline's photo split (before/after
        calibrating the mask input)
    python -m benchmarks.sam.measure latency OUT [--size N] [--runs 5]
        encoder and decoder timed interleaved in one process

Timings are ratios measured on whatever machine runs this; the load
average is printed beside them.
"""

import argparse
import glob
import json
import os
import time

import numpy as np


def checkpoint(folder, size, seed=0):
    """A random `SamModel` at `size`; transformers draws its vision neck
    near zero, so that neck is drawn again (normal, std 0.02)."""
    import torch
    import transformers

    config = transformers.SamConfig()
    config.vision_config.image_size = size
    config.prompt_encoder_config.image_size = size
    torch.manual_seed(seed)
    model = transformers.SamModel(config).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "neck" in name and name.endswith("weight"):
                if "layer_norm" in name:
                    parameter.fill_(1.0)
                else:
                    parameter.normal_(0.0, 0.02)
    model.save_pretrained(folder, safe_serialization=True)


def export(folder, out, size, modes, calibration):
    from edge_backbones.exporter.pipeline import export as run_export

    records = run_export(
        folder,
        image_size=size,
        modes=modes,
        out=out,
        calibration=calibration,
    )
    for record in records:
        print(record.summary())


def lean_export(folder, out, size):
    """The fp32 pair without the pipeline's float reference at full size
    (its Keras run of ViT-B at 1024 peaks near 6 GB): the encoder
    converted as the pipeline converts it, the decoder verified on the
    fp32 encoder's embeddings of two random images."""
    from edge_backbones.exporter import sam as sam_export
    from edge_backbones.exporter.convert import Converter
    from edge_backbones.exporter.graph import serving_model, write_saved_model
    from edge_backbones.runtime.sam_predictor import SignatureModel

    os.makedirs(out, exist_ok=True)
    work = os.path.join(out, ".work")
    sam = sam_export.load_sam(folder, (size, size), False)
    name = os.path.basename(os.path.normpath(folder))
    saved = write_saved_model(
        serving_model(sam.image_encoder, (size, size)),
        os.path.join(work, "encoder"),
    )
    content = Converter(saved, log=print).fp32()
    encoder_path = os.path.join(out, f"{name}_{size}x{size}_fp32.tflite")
    level = sam.image_encoder.feature_info[0].name
    # no metadata: this encoder is timed and feeds the decoder, no more
    with open(encoder_path, "wb") as f:
        f.write(content)
    encoder = SignatureModel(encoder_path)
    rng = np.random.default_rng(0)
    embeddings = [
        encoder(images=rng.normal(size=(1, size, size, 3)))[level]
        for _ in range(2)
    ]
    del encoder
    written, rejected = sam_export.export_decoders(
        folder,
        sam,
        ["fp32"],
        lambda mode: f"{name}_{size}x{size}_decoder_{mode}",
        out,
        work,
        [],
        embeddings,
        {
            "name": name,
            "class_name": "SAMBackbone",
            "config": {},
            "weights": os.path.abspath(folder),
            "params": int(sam.count_params()),
        },
        log=print,
    )
    print(json.dumps({"written": [w["path"] for w in written],
                      "rejected": [str(e) for _, e in rejected]}))  # fmt: skip


def _pair(out, size, mode="fp32"):
    name = os.path.basename(glob.glob(os.path.join(out, "*_decoder_*.json"))[0])
    stem = name.split(f"_{size}x{size}_decoder_")[0]
    return (
        os.path.join(out, f"{stem}_{size}x{size}_{mode}.tflite"),
        os.path.join(out, f"{stem}_{size}x{size}_decoder_{mode}.tflite"),
    )


def _prompts(size, count=8):
    from edge_backbones.exporter.sam import prompt_set

    return prompt_set((size, size), 4, count, seed=1)


def parity(folder, out, size, photos=2):
    """Mask IoU (logits > 0) and IoU-prediction error of the exported fp32
    pair against transformers' SamModel, per prompt and mask."""
    import torch
    import transformers

    from edge_backbones.core.mask_metrics import mask_iou
    from edge_backbones.runtime.sam_predictor import SignatureModel

    encoder_path, decoder_path = _pair(out, size)
    encoder = SignatureModel(encoder_path)
    decoder = SignatureModel(decoder_path)
    model = transformers.SamModel.from_pretrained(folder).eval()
    rng = np.random.default_rng(5)
    coords, labels = _prompts(size)
    ious, errors = [], []
    for _ in range(photos):
        image = rng.normal(size=(size, size, 3)).astype(np.float32)
        (embeddings,) = encoder(images=image[None]).values()
        with torch.no_grad():
            torch_embeddings = model.get_image_embeddings(
                torch.from_numpy(image.transpose(2, 0, 1)[None])
            )
        for c, lab in zip(coords, labels, strict=True):
            h, w = embeddings.shape[1:3]
            ours = decoder(
                image_embeddings=embeddings,
                point_coords=c[None],
                point_labels=lab[None],
                mask_input=np.zeros((1, 4 * h, 4 * w, 1), np.float32),
                has_mask_input=np.zeros((1, 1), np.float32),
            )
            box = lab >= 2
            points = ~box
            if not box.any():
                # transformers appends one "not a point" itself without
                # a box: give it one fewer of ours
                points[np.flatnonzero(lab == -1)[-1]] = False
            kwargs = {
                "input_points": torch.from_numpy(c[points][None, None]),
                "input_labels": torch.from_numpy(
                    lab[points][None, None].astype(np.int64)
                ),
            }
            if box.any():
                kwargs["input_boxes"] = torch.from_numpy(
                    c[box].reshape(1, 1, 4)
                )
            with torch.no_grad():
                theirs = model(
                    image_embeddings=torch_embeddings,
                    multimask_output=True,
                    **kwargs,
                )
            want = theirs.pred_masks[0, 0].numpy() > 0
            got = np.moveaxis(ours["masks"][0], -1, 0)[1:] > 0
            ious.extend(mask_iou(got, want).tolist())
            errors.append(
                float(
                    np.abs(
                        ours["iou_predictions"][0, 1:]
                        - theirs.iou_scores[0, 0].numpy()
                    ).max()
                )
            )
    print(
        json.dumps(
            {
                "masks": len(ious),
                "mask_iou_min": min(ious),
                "mask_iou_mean": float(np.mean(ious)),
                "iou_prediction_max_error": max(errors),
            }
        )
    )


def decoders(folder, out, size, modes, calibration, mask_prompts):
    """The decoder in `modes` on the pipeline's photo split and float
    embeddings, calibrated with or without mask-input prompts
    (`export_decoders(mask_prompts=...)`); prints its verification."""
    from edge_backbones.exporter import calibration as calibration_lib
    from edge_backbones.exporter import graph as graph_lib
    from edge_backbones.exporter import options as options_lib
    from edge_backbones.exporter import pipeline
    from edge_backbones.exporter import sam as sam_export

    job = options_lib.job(
        {"model": folder, "image_size": size, "modes": modes,
         "calibration": calibration, "out": out}
    )  # fmt: skip
    plan = pipeline.plan_export(job)
    serving = graph_lib.serving_graph(
        plan.backbone, plan.size, plan.out_features, plan.preprocessing
    )
    arrays = calibration_lib.preprocessed(
        plan.calibration, "calibration", plan.preprocessing, plan.size
    )

    def embeddings(images):
        (outputs,) = graph_lib.reference_outputs(serving, images).values()
        return [e[None] for e in outputs]

    os.makedirs(out, exist_ok=True)
    sam_export.export_decoders(
        folder,
        sam_export.load_sam(folder, (size, size), False),
        modes.split(","),
        lambda mode: f"decoder_{mode}",
        out,
        out,
        embeddings(arrays),
        embeddings(plan.holdout),
        {"name": "sam", "class_name": "SAMBackbone", "config": {},
         "weights": os.path.abspath(folder), "params": 0},
        mask_prompts=mask_prompts,
        log=print,
    )  # fmt: skip


def latency(out, size, runs, mode="fp32", decoder_mode=None):
    """Median encoder run and median decoder run (one prompt), timed in
    turn in one process."""
    from edge_backbones.runtime.sam_predictor import SignatureModel

    encoder_path, _ = _pair(out, size, mode)
    _, decoder_path = _pair(out, size, decoder_mode or mode)
    encoder = SignatureModel(encoder_path)
    decoder = SignatureModel(decoder_path)
    image = np.random.default_rng(0).normal(size=(1, size, size, 3))
    (embeddings,) = encoder(images=image).values()
    h, w = embeddings.shape[1:3]
    coords, labels = _prompts(size, runs)
    encoder_times, decoder_times = [], []
    for i in range(runs + 1):
        started = time.perf_counter()
        encoder(images=image)
        encoder_time = time.perf_counter() - started
        started = time.perf_counter()
        decoder(
            image_embeddings=embeddings,
            point_coords=coords[i % runs][None],
            point_labels=labels[i % runs][None],
            mask_input=np.zeros((1, 4 * h, 4 * w, 1), np.float32),
            has_mask_input=np.zeros((1, 1), np.float32),
        )
        if i:  # the first pair warms up
            encoder_times.append(encoder_time)
            decoder_times.append(time.perf_counter() - started)
    encoder_ms = 1e3 * float(np.median(encoder_times))
    decoder_ms = 1e3 * float(np.median(decoder_times))
    print(
        json.dumps(
            {
                "encoder": os.path.basename(encoder_path),
                "decoder": os.path.basename(decoder_path),
                "encoder_ms": round(encoder_ms, 1),
                "decoder_ms_per_prompt": round(decoder_ms, 2),
                "decoder_share_of_encoder": round(decoder_ms / encoder_ms, 4),
                "runs": runs,
                "load_average": os.getloadavg(),
            }
        )
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    steps = ["checkpoint", "export", "lean", "parity", "latency", "decoders"]
    parser.add_argument("step", choices=steps)
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--modes", default="fp32")
    parser.add_argument("--calibration", default=None)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--decoder-mode", default=None)
    parser.add_argument(
        "--no-mask-prompts", action="store_true",
        help="decoders: calibrate on prompts without a mask input only",
    )  # fmt: skip
    args = parser.parse_args()
    if args.step == "checkpoint":
        checkpoint(args.paths[0], args.size)
    elif args.step == "export":
        export(*args.paths[:2], args.size, args.modes, args.calibration)
    elif args.step == "lean":
        lean_export(*args.paths[:2], args.size)
    elif args.step == "parity":
        parity(*args.paths[:2], args.size)
    elif args.step == "decoders":
        decoders(
            *args.paths[:2],
            args.size,
            args.modes,
            args.calibration,
            not args.no_mask_prompts,
        )
    else:
        latency(args.paths[0], args.size, args.runs, "fp32", args.decoder_mode)


if __name__ == "__main__":
    main()
