"""Native (C++) lines written to descriptor 2 stay hidden while Python's
own stderr lines show, and a failure replays what was hidden."""

import subprocess
import sys
import textwrap

from tests.conftest import REPO_ROOT

SCRIPT = textwrap.dedent(
    """
    import os, sys
    from edge_backbones.native_logs import captured_native_stderr

    with captured_native_stderr():
        os.write(2, b"I0000 cudart_stub.cc:31] native noise\\n")
        print("export: our line", file=sys.stderr)
        if sys.argv[1] == "fail":
            raise SystemExit("export failed")
    print("after: stderr restored", file=sys.stderr)
    os.write(2, b"native after\\n")
    """
)


def _run(mode):
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, mode],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_native_lines_hidden_and_ours_shown():
    run = _run("ok")
    assert run.returncode == 0, run.stderr
    assert run.stderr.splitlines() == [
        "export: our line",
        "after: stderr restored",
        "native after",
    ]


def test_a_failure_replays_the_native_lines():
    run = _run("fail")
    assert run.returncode == 1
    assert "I0000 cudart_stub.cc:31] native noise" in run.stderr
    assert run.stderr.index("our line") < run.stderr.index("export failed")
