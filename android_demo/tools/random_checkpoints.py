"""Random Hugging Face checkpoints for the demo app when no trained one is
given: a SegFormer on MiT-B0 (transformers' default SegformerConfig, 150
classes as ADE20K's head) and the tiny SamModel the tests use.

    python android_demo/tools/random_checkpoints.py segformer DIR
    python android_demo/tools/random_checkpoints.py sam DIR

Random weights show the plumbing (outputs by name, overlay, taps), not a
useful segmentation; pass a fine-tuned folder to bundle_assets.sh for that.
"""

import argparse
import os
import sys

__all__ = ["main", "save_segformer_b0"]

# the repository root: tests/tiny.py builds the tiny SAM checkpoint
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def save_segformer_b0(folder, num_labels=150, seed=0):
    """A random `SegformerForSemanticSegmentation` on MiT-B0, saved with
    `save_pretrained` (safetensors) in `folder`."""
    import torch
    import transformers

    torch.manual_seed(seed)
    config = transformers.SegformerConfig(
        id2label={i: f"class {i}" for i in range(num_labels)}
    )
    transformers.SegformerForSemanticSegmentation(
        config
    ).eval().save_pretrained(folder, safe_serialization=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("kind", choices=("segformer", "sam"))
    parser.add_argument("folder", help="where to save the checkpoint")
    args = parser.parse_args(argv)
    if args.kind == "segformer":
        save_segformer_b0(args.folder)
    else:
        sys.path.insert(0, _ROOT)
        from tests.tiny import save_tiny_sam_model

        save_tiny_sam_model(args.folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
