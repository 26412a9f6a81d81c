import subprocess
import sys

import pytest


def test_op_names_never_import_tensorflow(tiny):
    # a device whose interpreter package ships no schema module (e.g.
    # tflite-runtime) must still name the ops that MACs are counted from,
    # without reaching for TensorFlow's copy of the schema
    code = (
        "import sys\n"
        "sys.modules['ai_edge_litert.schema_py_generated'] = None\n"
        "sys.modules['tflite_runtime.schema_py_generated'] = None\n"
        "from edge_backbones.runtime import read_model_file\n"
        f"parsed = read_model_file({str(tiny['paths']['f32'])!r})\n"
        "print(sorted(set(parsed.ops)))\n"
        "heavy = [m for m in sys.modules\n"
        "         if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras')]\n"
        "print(heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    ops, heavy = result.stdout.strip().splitlines()[-2:]
    assert heavy == "[]"
    assert "'CONV_2D'" in ops


def test_type_and_op_tables_agree_with_litert_schema():
    # the reader's own tables stand in when no schema module is installed;
    # an entry off by one would misname every tensor type or op after it
    schema = pytest.importorskip("ai_edge_litert.schema_py_generated")
    from edge_backbones.runtime import model_file

    for code, name in model_file.TENSOR_TYPES.items():
        assert getattr(schema.TensorType, name.upper()) == code, name
    for code, name in model_file._KNOWN_BUILTINS.items():
        assert getattr(schema.BuiltinOperator, name) == code, name
    assert len(model_file.TENSOR_TYPES) == 18
