"""The ``tradepipe`` command line: one entry point, sub-commands found in ``pipeline.commands``."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from pipeline import commands


def build_parser() -> argparse.ArgumentParser:
    """The full parser, with every module of ``pipeline.commands`` registered in name order."""
    parser = argparse.ArgumentParser(
        prog="tradepipe",
        description="A shared-memory, multiprocess trading pipeline.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{module_info.name}")
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen command; its return value is the exit status."""
    args = build_parser().parse_args(argv)
    try:
        status = args.func(args)
    except KeyboardInterrupt:
        return 130
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
