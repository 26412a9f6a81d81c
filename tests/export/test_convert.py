"""Conversion modes, the builtins-only rule and the GPU check."""

import keras
import pytest
from keras import ops

from edge_backbones.errors import ExportError
from edge_backbones.export.convert import Converter, gpu_compatibility
from edge_backbones.export.graph import serving_model, write_saved_model
from edge_backbones.models.backbone import Backbone, FeatureInfo
from edge_backbones.runtime.model_file import read_model_file


class _ErfBackbone(Backbone):
    """erf has no TFLite builtin: it lowers to a Flex op."""

    def __init__(self, **kwargs):
        images = keras.Input((8, 8, 3), name="images")
        p1 = keras.layers.Lambda(ops.erf)(images)
        super().__init__(images, p1, **kwargs)
        self._set_pyramid({"P1": p1}, [FeatureInfo("P1", 3, 1)])


@pytest.fixture(scope="module")
def saved(tiny_backbone, tmp_path_factory):
    path = tmp_path_factory.mktemp("sm") / "saved_model"
    return write_saved_model(serving_model(tiny_backbone, (32, 32)), path)


def test_float_modes(saved):
    converter = Converter(saved)
    fp32 = read_model_file(converter.fp32())
    # a static graph: no shape plumbing, rank <= 4
    assert not {"SHAPE", "GATHER", "PACK"} & set(fp32.op_histogram)
    assert fp32.max_tensor_rank <= 4
    fp16 = read_model_file(converter.fp16())
    assert "float16" in fp16.tensor_types
    assert gpu_compatibility(converter.fp32()) == (True, [])


def test_calibrated_modes_need_images(saved):
    with pytest.raises(ExportError, match="calibration"):
        Converter(saved).int8()


def test_flex_ops_fail_unless_allowed(tmp_path):
    saved = write_saved_model(
        serving_model(_ErfBackbone(), (8, 8)), tmp_path / "sm"
    )
    with pytest.raises(ExportError, match="Erf.*allow-flex"):
        Converter(saved).fp32()
    allowed = read_model_file(Converter(saved, allow_flex=True).fp32())
    assert any(op.startswith("CUSTOM:Flex") for op in allowed.ops)
