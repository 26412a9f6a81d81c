import subprocess
import sys


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
