"""How much of the public API carries type annotations.

The public API is each module's `__all__`: its functions, its classes and
their public methods (properties and dunders included, `_private` ones
not). A function or method counts as annotated when every parameter but a
method's `self`/`cls` has an annotation and it declares what it returns
(an `__init__` with an annotated parameter may leave out `-> None`, as
mypy allows). A class counts as annotated when all its counted methods
are. Names `__all__` merely re-exports are counted where they are defined.

    python .ci/typing/count_annotations.py                # every module, summed
    python .ci/typing/count_annotations.py --missing      # and what is not
    python .ci/typing/count_annotations.py edge_backbones.runtime.bench

Reads source only (ast): nothing is imported, so no framework is needed.
"""

import argparse
import ast
import dataclasses
import os
import sys

ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)
PACKAGE = "edge_backbones"


@dataclasses.dataclass(frozen=True)
class Unit:
    """One counted public function, method or class."""

    module: str
    name: str  # "f", "Class" or "Class.method"
    annotated: bool
    line: int


def module_files(root=ROOT):
    """{dotted module name: path} for every .py file of the package."""
    found = {}
    for folder, _, files in os.walk(os.path.join(root, PACKAGE)):
        for file in files:
            if not file.endswith(".py"):
                continue
            path = os.path.join(folder, file)
            parts = os.path.relpath(path, root)[: -len(".py")].split(os.sep)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return dict(sorted(found.items()))


def public_names(tree):
    """The string entries of a module's literal `__all__`, or None."""
    for node in tree.body:
        targets = []
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            if not isinstance(value, (ast.List, ast.Tuple)):
                return None
            strings = [e for e in value.elts if isinstance(e, ast.Constant)]
            return [e.value for e in strings if isinstance(e.value, str)]
    return None


def function_annotated(node, is_method):
    """Every parameter (but a method's first) and the return annotated."""
    args = node.args
    positional = [*args.posonlyargs, *args.args]
    if is_method and not _is_static(node) and positional:
        positional = positional[1:]
    params = [*positional, *args.kwonlyargs]
    params += [a for a in (args.vararg, args.kwarg) if a is not None]
    if any(p.annotation is None for p in params):
        return False
    if node.returns is not None:
        return True
    return node.name == "__init__" and bool(params)


def _is_static(node):
    return any(
        isinstance(d, ast.Name) and d.id == "staticmethod"
        for d in node.decorator_list
    )


def _counted_method(name):
    return not name.startswith("_") or (
        name.startswith("__") and name.endswith("__")
    )


def module_units(module, path):
    """The counted units of one module (empty without a literal __all__)."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    names = public_names(tree)
    if not names:
        return []
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    units = []
    for node in tree.body:
        if isinstance(node, functions) and node.name in names:
            units.append(
                Unit(
                    module,
                    node.name,
                    function_annotated(node, False),
                    node.lineno,
                )
            )
        elif isinstance(node, ast.ClassDef) and node.name in names:
            methods = [
                Unit(
                    module,
                    f"{node.name}.{item.name}",
                    function_annotated(item, True),
                    item.lineno,
                )
                for item in node.body
                if isinstance(item, functions) and _counted_method(item.name)
            ]
            units.append(
                Unit(
                    module,
                    node.name,
                    all(m.annotated for m in methods),
                    node.lineno,
                )
            )
            units += methods
    return units


def count(modules=None, root=ROOT):
    """The units of `modules` (dotted names; default: all of them)."""
    files = module_files(root)
    unknown = sorted(set(modules or ()) - set(files))
    if unknown:
        raise SystemExit(f"no such module under {PACKAGE}/: {unknown}")
    units = []
    for module in modules or files:
        units += module_units(module, files[module])
    return units


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="dotted module names")
    parser.add_argument(
        "--missing", action="store_true", help="list what is not annotated"
    )
    args = parser.parse_args(argv)
    units = count(args.modules)
    by_module = {}
    for unit in units:
        by_module.setdefault(unit.module, []).append(unit)
    for module, members in by_module.items():
        done = sum(u.annotated for u in members)
        print(f"{module}: {done}/{len(members)}")
        if args.missing:
            for unit in members:
                if not unit.annotated:
                    print(f"    {unit.name} (line {unit.line})")
    done = sum(u.annotated for u in units)
    print(f"{done}/{len(units)} annotated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
