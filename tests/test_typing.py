"""The typed public API: py.typed ships, and every public function, method
and class stays annotated (.ci/typing/count_annotations.py counts; .ci/lint.sh
type-checks)."""

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


def _counter():
    path = os.path.join(ROOT, ".ci", "typing", "count_annotations.py")
    spec = importlib.util.spec_from_file_location("count_annotations", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_public_function_is_annotated():
    # the public API: each module's __all__ (.ci/typing/count_annotations.py)
    units = _counter().count()
    missing = [f"{u.module}.{u.name}" for u in units if not u.annotated]
    assert len(units) > 400, "the counter lost most of the package"
    assert not missing, f"not annotated: {missing}"


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


def test_editor_sees_concrete_types():
    # what the issue asked an editor to show; mypy reads, never runs, it
    pytest.importorskip("mypy")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--no-error-summary",
            "--warn-unused-ignores",
            os.path.join(ROOT, ".ci", "typing", "editor_check.py"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    revealed = [
        line.split('Revealed type is "')[1].rstrip('"')
        for line in done.stdout.splitlines()
        if "Revealed type is" in line
    ]
    bits = "numpy._typing._nbit_base"
    array = (
        f"numpy.ndarray[tuple[Any, ...], numpy.dtype[numpy.floating[{bits}"
        f"._32Bit] | numpy.unsignedinteger[{bits}._8Bit] | "
        f"numpy.signedinteger[{bits}._32Bit]]]"
    )
    assert revealed == [
        f"dict[str, {array}]",
        "list[edge_backbones.exporter.pipeline.ArtifactRecord]",
        "edge_backbones.models.mit.mit_backbone.MiTBackbone",
    ], done.stdout + done.stderr
    # the typo's ignore is used: mypy caught `mode=` (else: unused ignore)
    assert done.returncode == 0, done.stdout + done.stderr
