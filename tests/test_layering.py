"""The package's layers import downward only.

Every module is parsed (nothing is imported), and every import counts:
top-level ones, ones inside functions (a lazy import is still a
dependency), and `importlib.import_module("...")` with a literal name.
"""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "edge_backbones"

# part -> the parts it must never import, directly or lazily
NEVER = {
    "_compat": {"models", "runtime", "exporter", "report", "npu", "core"},
    "models": {"runtime", "exporter", "report", "npu"},
    "runtime": {"models", "exporter", "report", "npu"},
    "npu": {"exporter", "report", "models"},
    "exporter": {"report"},
}
# core imports nothing of the package but these (and itself)
CORE_MAY_IMPORT = {"core", "errors", "atomic_io", "text"}
# what core may import from outside the standard library
CORE_THIRD_PARTY = {"numpy", "cv2", "tomli"}


def _module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path):
    """(line, dotted module name) of every import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            yield node.lineno, module
            # `from edge_backbones import runtime` names a part too
            for alias in node.names:
                yield node.lineno, f"{module}.{alias.name}"
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.lineno, node.args[0].value


def _part(module):
    """`edge_backbones.runtime.x` -> "runtime"; None outside the package."""
    parts = module.split(".")
    if parts[0] != "edge_backbones" or len(parts) < 2:
        return None
    return parts[1]


def _modules():
    return sorted(PACKAGE.rglob("*.py"))


def crossings(paths=None):
    """["file:line imports module (part -> part)"] breaking the nevers."""
    found = []
    for path in paths or _modules():
        source = _part(_module_name(path))
        for line, module in _imports(path):
            target = _part(module)
            where = f"{path.relative_to(PACKAGE.parent)}:{line} {module}"
            if target in NEVER.get(source, ()):
                found.append(f"{where} ({source} -> {target})")
            if source == "core":
                top = module.split(".")[0]
                if target is not None and target not in CORE_MAY_IMPORT:
                    found.append(f"{where} (core -> {target})")
                elif top in ("tensorflow", "keras", "ai_edge_litert"):
                    found.append(f"{where} (core -> {top})")
                elif (
                    target is None
                    and top not in CORE_THIRD_PARTY
                    and top not in _STDLIB
                ):
                    found.append(f"{where} (core -> {top})")
    return found


_STDLIB = set(__import__("sys").stdlib_module_names)


def test_no_part_imports_a_layer_above_it():
    assert crossings() == []


@pytest.mark.parametrize(
    "part, source, broken",
    [
        ("models", "from edge_backbones.runtime import EdgeModel\n", "runtime"),
        # a lazy import inside a function is no loophole
        (
            "runtime",
            "def f():\n    import edge_backbones.exporter\n",
            "exporter",
        ),
        (
            "npu",
            'import importlib\nimportlib.import_module("edge_backbones.'
            'exporter.verify")\n',
            "exporter",
        ),
        ("exporter", "from ..report import render\n", "report"),
        ("core", "import tensorflow as tf\n", "tensorflow"),
        ("core", "from edge_backbones.runtime import preprocess\n", "runtime"),
    ],
)
def test_a_seeded_crossing_is_found(
    tmp_path, monkeypatch, part, source, broken
):
    # a fake package tree: the checker reads files, it imports nothing
    package = tmp_path / "edge_backbones"
    (package / part).mkdir(parents=True)
    module = package / part / "seeded.py"
    module.write_text(source)
    monkeypatch.setattr(
        __import__(__name__, fromlist=["PACKAGE"]), "PACKAGE", package
    )
    found = crossings([module])
    assert found and all(broken in f for f in found), found


# the libraries whose private names only edge_backbones/_compat may use
FOREIGN = (
    "tensorflow",
    "keras",
    "tf_keras",
    "ai_edge_litert",
    "tflite_runtime",
)
# names bound to those libraries by convention, for `tf._x` style access
FOREIGN_ALIASES = {"tf", "keras", "tensorflow", "ai_edge_litert", "litert"}
# private attributes of their objects this package has needed (an
# interpreter's, a layer's, a converter's): named outside _compat, a leak
FOREIGN_PRIVATE = {
    "_get_ops_details",
    "_flatten_layers",
    "_manual_input_spec",
    "_experimental_calibrate_only",
    "_interpreter",
}


def _private(name):
    return name.startswith("_") and not name.startswith("__")


def private_uses(paths=None):
    """["file:line what"] for each private TensorFlow/LiteRT/Keras name used
    outside edge_backbones/_compat."""
    found = []
    for path in paths or _modules():
        if _part(_module_name(path)) == "_compat":
            continue
        where = str(path.relative_to(PACKAGE.parent))
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                    + [f"{node.module}.{a.name}" for a in node.names]
                )
                for name in names:
                    parts = name.split(".")
                    if parts[0] in FOREIGN and (
                        any(_private(p) for p in parts)
                        or name.startswith(
                            ("tensorflow.lite.python", "tensorflow.python")
                        )
                        or name.startswith("keras.src")
                    ):
                        found.append(f"{where}:{node.lineno} imports {name}")
                        break
            elif isinstance(node, ast.Attribute):
                root = node
                while isinstance(root, ast.Attribute):
                    root = root.value
                if node.attr in FOREIGN_PRIVATE or (
                    _private(node.attr)
                    and isinstance(root, ast.Name)
                    and root.id in FOREIGN_ALIASES
                ):
                    found.append(f"{where}:{node.lineno} .{node.attr}")
            elif (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and node.value.startswith(
                    ("tensorflow.lite.python", "tensorflow.python")
                )
            ):
                found.append(f"{where}:{node.lineno} names {node.value}")
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("hasattr", "getattr", "setattr")
                and len(node.args) > 1
                and isinstance(node.args[1], ast.Constant)
                and node.args[1].value in FOREIGN_PRIVATE
            ):
                found.append(f"{where}:{node.lineno} {node.args[1].value!r}")
    return found


def test_private_apis_of_other_libraries_stay_in_compat():
    assert private_uses() == []


@pytest.mark.parametrize(
    "source",
    [
        "def f(i):\n    return i._get_ops_details()\n",
        "def f(c):\n    c._experimental_calibrate_only = True\n",
        "from tensorflow.lite.python import util\n",
        "import keras\nkeras._private_thing\n",
        'def f(m):\n    return hasattr(m, "_manual_input_spec")\n',
        'MODULE = "tensorflow.lite.python.interpreter"\n',
    ],
)
def test_a_seeded_private_use_is_found(tmp_path, monkeypatch, source):
    package = tmp_path / "edge_backbones"
    (package / "exporter").mkdir(parents=True)
    module = package / "exporter" / "seeded.py"
    module.write_text(source)
    monkeypatch.setattr(
        __import__(__name__, fromlist=["PACKAGE"]), "PACKAGE", package
    )
    assert len(private_uses([module])) == 1
