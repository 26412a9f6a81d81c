"""The suite collects without the test extra: its modules skip, not error."""

import subprocess
import sys
import textwrap

from tests.conftest import REPO_ROOT

# The `test` extra's heavy packages (pyproject.toml); None in sys.modules
# makes every import of them raise ImportError, as when not installed.
TEST_EXTRA = ("torch", "transformers", "psutil", "matplotlib", "jsonschema")


def test_collection_without_test_extra_skips_instead_of_erroring():
    script = textwrap.dedent(
        f"""
        import sys
        for name in {TEST_EXTRA!r}:
            sys.modules[name] = None
        import pytest
        sys.exit(pytest.main(
            ["--collect-only", "-q", "-rs", "-p", "no:cacheprovider", "tests"]
        ))
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "error" not in run.stdout.splitlines()[-1], run.stdout[-3000:]
    for module in ("test_vit_det_layers.py", "test_vit_det_convert_sam.py"):
        assert f"SKIPPED [1] tests/models/{module}" in run.stdout, run.stdout[
            -3000:
        ]
