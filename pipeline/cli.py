"""The ``tradepipe`` command line: one entry point, sub-commands found in ``pipeline.commands``.

``main`` is the only place that turns failures into output: a ``CommandError`` (or a usage
error from the parser) becomes one line on stderr, ``tradepipe COMMAND: message``, and the
exit status from ``pipeline.exitcodes``. No command prints a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from pipeline import commands
from pipeline.exitcodes import CommandError, ExitStatus


class _UsageError(Exception):
    def __init__(self, prog: str, message: str) -> None:
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (with a pointer to ``--help``)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(self.prog, message)


def build_parser() -> argparse.ArgumentParser:
    """The full parser, with every module of ``pipeline.commands`` registered in name order."""
    parser = _Parser(
        prog="tradepipe",
        description="A shared-memory trading pipeline: rings, risk, matching, a journal.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{module_info.name}")
        module.register(subparsers)
    _name_leaves(parser)
    return parser


def _name_leaves(parser: argparse.ArgumentParser) -> None:
    """Give every sub-command the full name its errors are printed under."""
    parser.set_defaults(prog=parser.prog)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _name_leaves(sub)


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen command; its return value is the exit status."""
    prog = "tradepipe"
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as done:  # --help: what it printed must reach the reader, or fail here
            _flush_stdout()
            return done.code if isinstance(done.code, int) else ExitStatus.USAGE
        prog = args.prog
        status = args.func(args)
        _flush_stdout()  # here, not at exit: a closed pipe or a full disk is reported below
    except _UsageError as error:
        print(f"{error.prog}: {error} (see {error.prog} --help)", file=sys.stderr)
        return ExitStatus.USAGE
    except CommandError as error:
        print(f"{prog}: {error}", file=sys.stderr)
        return error.status
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return ExitStatus.INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``| head``): stop writing, quietly; exit as ``yes | head`` does.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return ExitStatus.PIPE_CLOSED
    except OSError as error:  # a safety net: commands should say what they were doing
        where = f" {error.filename}:" if error.filename else ""
        print(f"{prog}:{where} {error.strerror or error}", file=sys.stderr)
        return ExitStatus.REFUSED
    return int(status or 0)


def _flush_stdout() -> None:
    """Flush what a command printed; a write error other than a closed pipe is a refusal."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as error:
        raise CommandError(
            f"writing standard output failed: {error.strerror or error}", ExitStatus.REFUSED
        ) from None


if __name__ == "__main__":
    sys.exit(main())
