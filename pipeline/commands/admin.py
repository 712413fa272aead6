"""The operator's verbs of a running pipeline: ``snapshot``, ``halt SYMBOL``, ``resume
SYMBOL``, ``kill-switch ACCOUNT|--all [--release]``, ``deposit ACCOUNT ASSET AMOUNT``.

Each sends one control message (``pipeline.control_messages``: ``Snapshot``, ``Halt``,
``Resume``, ``KillSwitch``, ``Deposit``) to the supervisor found through the run directory
and prints its answer: ``Ack`` → its detail on stdout, exit 0; ``Refused`` → the reason in
one stderr line, exit 4 (the system refused; nothing was done). No pipeline running is said
as ``tradepipe status`` says it, exit 1. The supervisor hands halts, kill switches and
deposits to ingest, which sequences and journals them like orders
(``stages.ingest.admin``), so a replay applies them at the same place.

Values are checked here, before anything is sent, with the same rules ingest applies
(``stages.ingest.admin``): a bad one is a usage error (exit 2) naming it. SYMBOL and ASSET
are a number or a name from the run's configuration (``engine.risk.instruments``,
``engine.risk.assets``; ``--config CONFIG.toml``, else the embedded defaults, whose
``[pipeline] run_dir`` is also the default ``--run-dir``). ACCOUNT is 1 or more: account 0
is the fee account, and in a kill switch would mean every account, which ``--all`` says.

One table (``VERBS``) describes every verb: its arguments and how they become the message;
registering, sending and answering are shared.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from pipeline import control_messages as m
from pipeline.config import RunConfig, load_config
from pipeline.control import PipelineClient
from pipeline.exitcodes import CommandError, ExitStatus
from stages.ingest import admin

#: seconds to wait for the supervisor, which asks the stage that does it (ingest)
REQUEST_TIMEOUT = 10.0
#: a snapshot writes the whole state first
SNAPSHOT_TIMEOUT = 60.0


@dataclass(frozen=True)
class Verb:
    """One verb: its name and help, its own arguments, and how they become the request
    (raising ``CommandError`` for a value that is not right)."""

    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    message: Callable[[argparse.Namespace, RunConfig, str], m.Message]
    timeout: float = REQUEST_TIMEOUT


def register(subparsers: argparse._SubParsersAction) -> None:
    for verb in VERBS:
        parser = subparsers.add_parser(
            verb.name, help=verb.help, description=f"{verb.help}. {_ANSWERS}"
        )
        verb.arguments(parser)
        parser.add_argument(
            "--config",
            metavar="CONFIG.toml",
            help="the running pipeline's configuration: its symbol and asset names and its "
            "[pipeline] run_dir (default: the embedded defaults)",
        )
        parser.add_argument(
            "--run-dir",
            metavar="DIR",
            help="the pipeline's run directory (default: [pipeline] run_dir of --config, "
            "else of the embedded defaults)",
        )
        parser.set_defaults(func=functools.partial(run, verb))


_ANSWERS = (
    "Prints the pipeline's answer; exit 0 done, 1 no pipeline running, 2 a bad value, "
    "4 the pipeline refused (the reason is printed)."
)


def run(verb: Verb, args: argparse.Namespace) -> int:
    config = load_config(args.config)  # ConfigError is a CommandError (exit 2)
    source = f"config {args.config}" if args.config else "the embedded defaults (see --config)"
    message = verb.message(args, config, source)  # bad values: before anything is sent
    run_dir = args.run_dir if args.run_dir is not None else config.pipeline.run_dir
    with PipelineClient(run_dir) as client:  # none running: NoPipelineError, exit 1
        reply = client.request(message, verb.timeout)
    if isinstance(reply, m.Refused):
        raise CommandError(
            f"the pipeline refused {message.kind}: {reply.reason}", ExitStatus.REFUSED
        )
    if not isinstance(reply, m.Ack):
        raise CommandError(
            f"the pipeline answered {message.kind} with {reply.kind!r}, not ack", ExitStatus.FAILED
        )
    print(f"{_describe(message)}: {reply.detail or 'done'}")
    return ExitStatus.OK


def _describe(message: m.Message) -> str:
    """``halt symbol=1``: what was asked, with the numbers the names resolved to."""
    fields = msgspec.structs.asdict(message)
    given = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None and v is not False)
    return f"{message.kind} {given}".rstrip()


# --- values ----------------------------------------------------------------------------------
def _checked(build: Callable[[], object]) -> None:
    """Run ``stages.ingest.admin``'s check of a value; its ``ValueError`` is a usage error."""
    try:
        build()
    except ValueError as error:
        raise CommandError(str(error)) from None


def _number_or_name(what: str, text: str, names: dict[str, int], kind: str, source: str) -> int:
    """``text`` as an integer, or the id the configuration gives the name ``text``
    (case-insensitive); a usage error naming the known names otherwise."""
    try:
        return int(text, 10)
    except ValueError:
        pass
    by_name = {name.casefold(): ident for name, ident in names.items() if name}
    if text.casefold() in by_name:
        return by_name[text.casefold()]
    known = ", ".join(f"{name} ({ident})" for name, ident in names.items() if name) or "none"
    raise CommandError(
        f"{what} {text!r} is neither a number nor the name of {kind} in {source}; known: {known}"
    )


def _integer(what: str, text: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise CommandError(f"{what} {text!r} is not an integer") from None


def _symbol(args: argparse.Namespace, config: RunConfig, source: str) -> int:
    names = {i.name: i.symbol for i in config.engine.risk.instruments}
    symbol = _number_or_name("SYMBOL", args.symbol, names, "an instrument", source)
    _checked(lambda: admin.halt(symbol))
    return symbol


def _account(text: str, *, kill_switch: bool = False) -> int:
    account = _integer("ACCOUNT", text)
    if account == 0:
        every = " (every account's kill switch: --all)" if kill_switch else ""
        raise CommandError(f"ACCOUNT 0 is the fee account: expected 1..{admin.MAX_ACCOUNT}{every}")
    _checked(lambda: admin.kill_switch(account))
    return account


# --- the verbs -------------------------------------------------------------------------------
def _symbol_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("symbol", metavar="SYMBOL", help="symbol id or instrument name (BTC-USD)")


def _kill_switch_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("account", metavar="ACCOUNT", nargs="?", help="the account (1 or more)")
    parser.add_argument("--all", action="store_true", help="every account (the global switch)")
    parser.add_argument("--release", action="store_true", help="lift the kill switch instead")


def _kill_switch(args: argparse.Namespace, config: RunConfig, source: str) -> m.Message:
    if (args.account is None) == (not args.all):
        given = "both ACCOUNT and --all" if args.all else "neither ACCOUNT nor --all"
        raise CommandError(f"{given}: give one account, or --all for every account")
    if args.all:
        return m.KillSwitch(all_accounts=True, release=args.release)
    return m.KillSwitch(account=_account(args.account, kill_switch=True), release=args.release)


def _deposit_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("account", metavar="ACCOUNT", help="the account credited (1 or more)")
    parser.add_argument("asset", metavar="ASSET", help="asset id or name (USD)")
    parser.add_argument(
        "amount", metavar="AMOUNT", help=f"units of the asset, 1..{admin.MAX_AMOUNT} (2**61)"
    )


def _deposit(args: argparse.Namespace, config: RunConfig, source: str) -> m.Message:
    account = _account(args.account)
    names = {a.name: a.asset for a in config.engine.risk.assets}
    asset = _number_or_name("ASSET", args.asset, names, "an asset", source)
    amount = _integer("AMOUNT", args.amount)
    _checked(lambda: admin.deposit(account, asset, amount))
    return m.Deposit(account=account, asset=asset, amount=amount)


VERBS: tuple[Verb, ...] = (
    Verb(
        "snapshot",
        "take a snapshot of the running pipeline's state now",
        lambda parser: None,
        lambda args, config, source: m.Snapshot(),
        SNAPSHOT_TIMEOUT,
    ),
    Verb(
        "halt",
        "halt trading in SYMBOL: its new orders are rejected until resume (sequenced, journaled)",
        _symbol_argument,
        lambda args, config, source: m.Halt(_symbol(args, config, source)),
    ),
    Verb(
        "resume",
        "resume trading in a halted SYMBOL",
        _symbol_argument,
        lambda args, config, source: m.Resume(_symbol(args, config, source)),
    ),
    Verb(
        "kill-switch",
        "engage (--release: lift) the kill switch of ACCOUNT, or of every account (--all): "
        "its resting orders are cancelled and its new ones rejected",
        _kill_switch_arguments,
        _kill_switch,
    ),
    Verb(
        "deposit",
        "credit AMOUNT units of ASSET to ACCOUNT (sequenced and journaled like an order)",
        _deposit_arguments,
        _deposit,
    ),
)
