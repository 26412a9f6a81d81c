"""edge_backbones side by side with the tools people use instead.

`python -m benchmarks.peers` converts one Hugging Face SegFormer-B0
checkpoint with edge_backbones, litert-torch and ai-edge-quantizer,
measures every artifact against the PyTorch float model and times them
all interleaved in one process (see README.md beside this file). Needs
the `bench` extra.
"""

__all__ = []
