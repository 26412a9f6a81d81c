#!/usr/bin/env bash
# Static checks, before anything slow: the type checker over the package
# (strict on the framework-free modules, see [tool.mypy] in pyproject.toml)
# and ruff's lint and format over the tree. Any finding fails CI.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m mypy
python -m ruff check .
python -m ruff format --check .
