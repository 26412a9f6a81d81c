"""A backbone quantized by Keras (`quantize("int8")`) goes through export."""

import warnings

import keras
import numpy as np
import pytest

from edge_backbones.core.fidelity import cosine
from edge_backbones.exporter.pipeline import export
from edge_backbones.models.mit import MiTBackbone
from edge_backbones.runtime.edge_model import EdgeModel
from tests.tiny import TINY_MIT_TWO_STAGES_WIDE

pytestmark = pytest.mark.matrix_stage


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_keras_quantized_backbone_exports(mode, tmp_path):
    keras.utils.set_random_seed(0)
    float_model = MiTBackbone(**TINY_MIT_TWO_STAGES_WIDE)
    quantized = MiTBackbone(**TINY_MIT_TWO_STAGES_WIDE)
    quantized.set_weights(float_model.get_weights())
    with warnings.catch_warnings():  # Keras lists layers it cannot quantize
        warnings.simplefilter("ignore")
        quantized.quantize(mode)
    (record,) = export(quantized, image_size=32, modes="fp32", out=tmp_path)
    # verified against the quantized Keras model itself ...
    assert record.fidelity["levels"]["P2"]["cosine"] > 0.9999
    # ... and within the stated tolerance of the float model
    x = np.random.default_rng(1).normal(size=(1, 32, 32, 3)).astype("f4")
    got = EdgeModel(record.path, num_threads=1)(x)["P2"]
    # Keras' quantized model also quantizes activations (per token, int8);
    # the artifact keeps them float: within cosine 0.999 of it
    keras_quantized = keras.ops.convert_to_numpy(quantized(x))
    assert cosine(got, keras_quantized) > 0.999
    expected = keras.ops.convert_to_numpy(float_model(x))
    assert cosine(got, expected) > (0.99 if mode == "int8" else 0.9)
    assert record.metadata["model"]["config"]["dtype"]["class_name"] == (
        "DTypePolicyMap"
    )
