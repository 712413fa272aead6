"""What the gateway's verbs share (``tradepipe order``, ``md``, ``load``): finding the
endpoint, CURVE options, and turning command-line values into protocol values with the
gateway's own checks, so a bad value is a usage error (exit 2) before anything connects.

**Endpoints.** ``--endpoint E`` is used as given. Otherwise the running pipeline is found
through its run directory (``--run-dir``, default ``[pipeline] run_dir``), as ``status``
finds it: no pipeline running is exit 1 with ``find_pipeline``'s reason, and a pipeline
whose manifest lists no gateway endpoint (it runs without ``[load] source = "gateway"`` or
``[gateway] enabled``) is exit 1 saying so. Of several endpoints an ``ipc://`` one is
preferred: the verbs run on the pipeline's host, and it needs no keys.

**CURVE.** ``--key NAME.key_secret`` and ``--server-key SERVER.key`` (both, or neither).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import msgspec

from pipeline.client import InvalidRequest, LogonError, LogonTimeout, curve_options
from pipeline.commands.status import add_run_dir_argument
from pipeline.control import find_pipeline
from pipeline.exitcodes import CommandError, ExitStatus
from pipeline.keys import KeyFileError
from stages.gateway import protocol as P
from stages.gateway.codec import Codec, ProtocolError

#: what the gateway's field paths are called on the command line
OPTION_NAMES = {
    "$.qty": "QTY",
    "$.price": "--price",
    "$.symbol": "SYMBOL",
    "$.client_order_id": "CLORDID",
    "$.account": "--account",
    "$.tif": "--tif",
    "$.by": "--by",
}


def add_connection_arguments(parser: argparse.ArgumentParser, *, account: bool = True) -> None:
    """``--endpoint``, ``--run-dir``, ``--key``, ``--server-key`` (and ``--account``)."""
    if account:
        parser.add_argument(
            "--account", default="1", metavar="A", help="the account to trade as (default: 1)"
        )
    parser.add_argument(
        "--endpoint",
        metavar="E",
        help="the endpoint (default: the running pipeline's, found through --run-dir)",
    )
    add_run_dir_argument(parser)
    parser.add_argument(
        "--key", metavar="NAME.key_secret", help="this client's CURVE key pair (tcp://)"
    )
    parser.add_argument(
        "--server-key", metavar="SERVER.key", help="the gateway's CURVE public key (tcp://)"
    )


def endpoint(args: argparse.Namespace, which: str) -> str:
    """The endpoint for ``which`` (``gateway`` or ``market_data``); see the module."""
    if args.endpoint:
        if not args.endpoint.startswith(("ipc://", "tcp://")):
            raise CommandError(f"--endpoint {args.endpoint!r}: use ipc://PATH or tcp://HOST:PORT")
        return args.endpoint
    manifest = find_pipeline(args.run_dir)  # none running: NoPipelineError, exit 1
    endpoints = list(getattr(manifest, which, ()) or ())
    if not endpoints:
        what = "order-entry gateway" if which == "gateway" else "market-data feed"
        raise CommandError(
            f"the pipeline in {args.run_dir} runs no {what} (start it with [load] source = "
            '"gateway" or [gateway] enabled = true), or name one with --endpoint',
            ExitStatus.FAILED,
        )
    return next((e for e in endpoints if e.startswith("ipc://")), endpoints[0])


def curve(args: argparse.Namespace) -> dict:
    """``keys`` / ``server_key`` options for ``Client`` / ``MarketData`` (checked now)."""
    if args.key is None and args.server_key is None:
        return {}
    try:
        curve_options(args.key, args.server_key)
    except KeyFileError as error:
        raise CommandError(str(error)) from None
    except ValueError as error:
        text = str(error).replace("keys", "--key").replace("server_key", "--server-key")
        raise CommandError(text) from None
    return {"keys": args.key, "server_key": args.server_key}


def integer(what: str, text: str) -> int:
    """``text`` as an integer, or a usage error naming ``what``."""
    try:
        value = int(text.replace("_", ""), 10)
    except ValueError:
        raise CommandError(f"{what} {text!r} is not an integer") from None
    if not -P.INT64_MAX <= value <= P.INT64_MAX:  # beyond what any record field holds
        raise CommandError(f"{what} {value} is out of range: expected at most {P.INT64_MAX}")
    return value


def account(text: str) -> int:
    value = integer("--account", text)
    if not 1 <= value <= P.MAX_ACCOUNT:
        raise CommandError(
            f"--account {value} is out of range: expected 1..{P.MAX_ACCOUNT} (0 is the fee account)"
        )
    return value


def symbol(text: str) -> str | int:
    """A symbol as the protocol takes it: an id if ``text`` is a number, else a name."""
    return int(text) if text.isdecimal() else text


def checked(message: P.Message, values: dict[str, str] | None = None) -> P.Message:
    """``message`` if the gateway would decode it; else a usage error naming the option
    (``QTY 0 is invalid: Expected `int` >= 1``)."""
    try:
        Codec.MSGPACK.decode_request(Codec.MSGPACK.encode(message))
    except ProtocolError as error:
        field = error.reject.field
        name = OPTION_NAMES.get(field, field)
        given = (values or {}).get(field)
        shown = f"{name} {given}" if given is not None else name
        raise CommandError(f"{shown} is invalid: {error.reject.text}") from None
    return message


def build(factory: Callable[[], P.Message], values: dict[str, str]) -> P.Message:
    """``factory()`` then ``checked``; a ValueError of a Struct's own check is a usage error."""
    try:
        message = factory()
    except (ValueError, msgspec.ValidationError) as error:
        raise CommandError(str(error).split(" - at ")[0]) from None
    return checked(message, values)


def connect_errors(error: Exception) -> CommandError:
    """A client's connection failure as the verb's error: no answer is exit 1 (nothing
    is listening, or CURVE let nothing through); a refusal is exit 4."""
    if isinstance(error, LogonTimeout):
        return CommandError(str(error), ExitStatus.FAILED)
    if isinstance(error, LogonError):
        return CommandError(str(error), ExitStatus.REFUSED)
    if isinstance(error, InvalidRequest):
        return CommandError(str(error))
    if isinstance(error, KeyFileError):
        return CommandError(str(error))
    return CommandError(f"{type(error).__name__}: {error}", ExitStatus.FAILED)


def describe(message: P.Message) -> str:
    """One line for a reply: its kind, then its fields (``accepted client_order_id=...``)."""
    fields = msgspec.structs.asdict(message)
    return " ".join([message.kind, *(f"{k}={v}" for k, v in fields.items() if v is not None)])
