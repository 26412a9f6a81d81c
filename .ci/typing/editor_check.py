"""What an editor shows for the package's main calls: run through mypy
(`python -m mypy .ci/typing/editor_check.py`), never executed. The last line is
a typo the checker must catch. tests/test_typing.py pins the output."""

import numpy as np
from typing_extensions import reveal_type

import edge_backbones
from edge_backbones import EdgeModel, MiTBackbone

model = EdgeModel("mit_b0_224x224_int8.tflite")
reveal_type(model(np.zeros((1, 224, 224, 3), np.float32)))
reveal_type(
    edge_backbones.export("mit_b0", modes="int8", calibration="calibration/")
)
reveal_type(MiTBackbone.from_preset("mit_b0", load_weights=False))
edge_backbones.export("mit_b0", mode="int8")  # type: ignore[call-arg]
