"""The contracts every part of the package shares, with no heavy imports.

`core` needs only the standard library, numpy and OpenCV: no Keras,
TensorFlow or LiteRT. Models, the exporter, the runtime, the NPU tools and
the reports all import downward from here, and `core` imports none of them
(only `edge_backbones.errors`, `.atomic_io` and `.text`).
"""
