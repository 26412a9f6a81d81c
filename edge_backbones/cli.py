"""`edge-backbones`: one command per job (export, run, bench, report,
compile).

Each area registers its own subcommand from a small `cli` module that imports
nothing heavy at import time, so `run` and `bench` work on a device with only
the runtime installed.
"""

import argparse
import importlib
import sys

from edge_backbones.errors import EdgeBackbonesError

# subcommand modules; each defines add_parsers(subparsers), and each parser
# it adds sets `func` (args -> exit code)
_COMMAND_MODULES = (
    "edge_backbones.exporter.cli",
    "edge_backbones.runtime.cli",
    "edge_backbones.runtime.sam_cli",
    "edge_backbones.report.cli",
    "edge_backbones.npu.cli",
)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="edge-backbones",
        description="Vision-transformer backbones to verified edge TFLite.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in _COMMAND_MODULES:
        importlib.import_module(module).add_parsers(subparsers)
    return parser


# commands whose native log lines (TensorFlow, LiteRT's INFO lines) stay off
# the terminal unless -v: `export` does it itself; `report` runs rows in
# worker processes whose own lines are its progress
_QUIET_COMMANDS = ("run", "bench", "segment", "compile")


def _run_command(args):
    from edge_backbones import native_logs

    if args.command not in _QUIET_COMMANDS or getattr(args, "verbose", False):
        return args.func(args)
    native_logs.set_log_levels(False)
    with native_logs.captured_native_stderr():
        native_logs.quiet_python_loggers()
        return args.func(args)


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return _run_command(args) or 0
    except EdgeBackbonesError as exc:
        print(f"edge-backbones {args.command}: {type(exc).__name__}: {exc}",
              file=sys.stderr)  # fmt: skip
        return 2
    except KeyboardInterrupt:
        # every file is written whole or not at all (a report's rows one
        # by one), so what is there stays usable
        print(f"edge-backbones {args.command}: interrupted; the files "
              "written so far are complete (a report continues with "
              "--resume)", file=sys.stderr)  # fmt: skip
        return 130


if __name__ == "__main__":
    sys.exit(main())
