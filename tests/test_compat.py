"""The private APIs behind edge_backbones/_compat: checked on these
versions, and still there."""

import pytest

from edge_backbones._compat import keras as keras_compat
from edge_backbones._compat import litert as litert_compat
from edge_backbones._compat import tensorflow as tf_compat
from edge_backbones._compat import unchecked


@pytest.mark.parametrize("compat", [tf_compat, litert_compat, keras_compat])
def test_installed_versions_are_the_checked_ones(compat):
    problem = compat.version_problem()
    assert problem is None, problem


def test_an_unchecked_version_names_the_module_to_recheck():
    message = unchecked("keras", "keras", ("0.1",))
    assert "edge_backbones/_compat/keras.py" in message
    assert "CHECKED_ON" in message
    assert unchecked("keras", "no-such-distribution-here", ("0.1",)) is None


def test_the_private_calls_still_exist():
    import keras

    tf = pytest.importorskip("tensorflow")
    from tensorflow.lite.python import convert, util

    assert callable(convert.mlir_quantize)
    assert callable(util.modify_model_io_type)
    assert issubclass(tf_compat.converter_error(), Exception)
    assert hasattr(tf_compat.schema(), "ModelT")
    assert tf.lite.TFLiteConverter is not None
    layer = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
    names = [type(x).__name__ for x in keras_compat.flatten_layers(layer)]
    assert names == ["Sequential", "InputLayer", "Dense"]
    assert list(keras_compat.flatten_layers(object())) == []
    from ai_edge_litert.interpreter import Interpreter

    converter = tf.lite.TFLiteConverter.from_keras_model(layer)
    interpreter = Interpreter(model_content=converter.convert())
    interpreter.allocate_tensors()
    ops = litert_compat.ops_details(interpreter)
    # the plan after delegation: the graph's op, then XNNPACK's node
    assert [op["op_name"] for op in ops] == ["FULLY_CONNECTED", "DELEGATE"]
    assert {"inputs", "outputs", "index"} <= set(ops[0])
