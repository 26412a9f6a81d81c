"""The typed public API: py.typed ships, and finished modules stay 100 %
annotated (tools/count_annotations.py counts; .ci/lint.sh type-checks)."""

import glob
import importlib.util
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# modules whose every public function, method and class is annotated; a
# module joins when its annotations are complete and mypy-clean
ANNOTATED_MODULES = [
    "edge_backbones.errors",
    "edge_backbones.atomic_io",
    "edge_backbones.text",
    *(
        f"edge_backbones.core.{name}"
        for name in (
            "cpuinfo fidelity image_sets modes preprocessing suggest"
        ).split()
    ),
    *(
        f"edge_backbones.runtime.{name}"
        for name in (
            "backends bench cli delegates edge_model engines "
            "gpu_probe known_faults metadata model_file npu_engines "
            "op_profile parity preprocess"
        ).split()
    ),
    *(
        f"edge_backbones.report.{name}"
        for name in (
            "cli collect deployment macs merge plot recipe records render "
            "thermal worker"
        ).split()
    ),
]


def _counter():
    path = os.path.join(ROOT, "tools", "count_annotations.py")
    spec = importlib.util.spec_from_file_location("count_annotations", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("module", ANNOTATED_MODULES)
def test_finished_modules_are_fully_annotated(module):
    units = _counter().count([module])
    missing = [u.name for u in units if not u.annotated]
    assert units, f"{module} has no public API to count"
    assert not missing, f"{module}: not annotated: {missing}"


def test_counter_tells_annotated_from_not(tmp_path):
    package = tmp_path / "edge_backbones"
    package.mkdir()
    (package / "sample.py").write_text(
        textwrap.dedent(
            """
            __all__ = ["typed", "untyped", "no_return", "Thing", "CONSTANT"]
            CONSTANT = 1
            def typed(a: int, *rest: str, **kw: float) -> int: ...
            def untyped(a, b: int) -> int: ...
            def no_return(a: int): ...
            def private(a): ...
            class Thing:
                def __init__(self, size: int): ...
                def method(self, x): ...
                def _hidden(self, x): ...
                @staticmethod
                def make(x: int) -> "Thing": ...
            """
        )
    )
    units = _counter().count(root=str(tmp_path))
    assert {u.name: u.annotated for u in units} == {
        "typed": True,
        "untyped": False,
        "no_return": False,
        "Thing": False,
        "Thing.__init__": True,
        "Thing.method": False,
        "Thing.make": True,
    }


def test_built_wheel_ships_py_typed(tmp_path):
    # a copy of what the wheel is built from, so the build leaves nothing
    # in the tree
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(os.path.join(ROOT, name), source / name)
    shutil.copytree(
        os.path.join(ROOT, "edge_backbones"),
        source / "edge_backbones",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "--wheel-dir",
            str(tmp_path / "dist"),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = glob.glob(str(tmp_path / "dist" / "*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "edge_backbones/py.typed" in names
    assert "edge_backbones/core/modes.toml" in names


def test_lazy_names_are_typed_as_what_they_resolve_to():
    # editors read the TYPE_CHECKING imports; callers get _LAZY's names
    import ast

    import edge_backbones

    path = os.path.join(ROOT, "edge_backbones", "__init__.py")
    with open(path) as f:
        tree = ast.parse(f.read())
    (block,) = [
        node
        for node in tree.body
        if isinstance(node, ast.If)
        and ast.unparse(node.test) == "TYPE_CHECKING"
    ]
    typed = {
        alias.asname or alias.name: node.module
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    # the same module each: nothing heavy is imported to check it
    assert typed == edge_backbones._LAZY


def test_export_kwargs_lists_every_export_option():
    from edge_backbones.exporter.options import OPTIONS, ExportKwargs

    assert set(ExportKwargs.__annotations__) == set(OPTIONS) - {"model"}
