"""The `cpu` target end to end: the exporting CPU's flags pick int8 or
float16 weights, and the artifact really holds them.

The tiny backbone is widened to 64 channels so every convolution and dense
layer has the >= 1024 weights the converter quantizes (the `tiny_backbone`
fixture's are too small: the converter leaves them float).
"""

import pytest

from edge_backbones.core import cpuinfo
from edge_backbones.exporter.pipeline import export
from tests.tflite_ops import operators

SIZE = (32, 48)
WEIGHTED_OPS = ("CONV_2D", "FULLY_CONNECTED")


@pytest.fixture(scope="module")
def wide_backbone():
    import keras

    from tests.tiny import TinyBackbone

    keras.utils.set_random_seed(0)
    return TinyBackbone(dim=64, name="tiny_wide")


def _export_on_cpu_with(flags, backbone, out, monkeypatch):
    # what /proc/cpuinfo says decides the recipe (recipes.cpu_plan)
    monkeypatch.setattr(
        cpuinfo, "read_cpuinfo", lambda path="/proc/cpuinfo": {"flags": flags}
    )
    (record,) = export(backbone, image_size=SIZE, targets="cpu", out=out)
    levels = record.fidelity["levels"].values()
    assert min(level["cosine"] for level in levels) >= 0.999
    return record, operators(record.path)


def test_int8_dot_products_give_int8_weights(
    wide_backbone, tmp_path, monkeypatch
):
    record, ops = _export_on_cpu_with(
        "fpu sse2 avx2 fma avx512_vnni", wide_backbone, tmp_path, monkeypatch
    )
    assert "dynamic int8" in record.metadata["recipe_reason"]
    assert "avx512_vnni" in record.metadata["recipe_reason"]
    weighted = [op for op in ops if op.name in WEIGHTED_OPS]
    assert len(weighted) == 2 + 2 * 4  # 2 patch embeddings, 4 dense a block
    for op in weighted:
        # int8 weights; float activations in and out, quantized per row at
        # run time by XNNPACK
        assert op.input_types[:2] == ("FLOAT32", "INT8"), op
        assert op.output_type == "FLOAT32", op
    assert "DEQUANTIZE" not in {op.name for op in ops}


def test_no_int8_dot_products_give_float16_weights(
    wide_backbone, tmp_path, monkeypatch
):
    # an AVX2-only CPU: dynamic int8 would be slower than fp32 there
    record, ops = _export_on_cpu_with(
        "fpu sse2 avx2 fma", wide_backbone, tmp_path, monkeypatch
    )
    assert "float16 weights" in record.metadata["recipe_reason"]
    weighted = [op for op in ops if op.name in WEIGHTED_OPS]
    assert len(weighted) == 2 + 2 * 4
    assert {op.input_types[1] for op in weighted} == {"FLOAT32"}
    assert "INT8" not in {t for op in ops for t in op.input_types}
    # every weight is stored in float16 and widened once by a DEQUANTIZE
    widened = [
        op
        for op in ops
        if op.name == "DEQUANTIZE" and op.input_types == ("FLOAT16",)
    ]
    assert len(widened) >= len(weighted)
