"""``tradepipe order buy|sell SYMBOL QTY [--price P] [--tif gtc|ioc|fok] ...`` and
``tradepipe order cancel CLORDID``: one order through the running pipeline's gateway,
printing its execution reports (one line each) as they come.

``buy`` / ``sell`` end when the order is done (filled, or an IOC / FOK's rest cancelled)
or rests in the book (accepted and nothing more came within ``REST_GRACE`` seconds: the
reports of one command are sent together); ``cancel`` when the order is cancelled and
done. Without ``--price`` the order is a market order.

Exit statuses (``docs/operations.md``): 0 done or resting; 1 no pipeline / gateway running
or no answer within ``--wait`` seconds; 2 a bad value, found here (``QTY 0``, ``--tif
day``) or by the gateway (an unknown symbol, an unknown client order id: its
``business_reject``); 4 refused: the engine rejected the order or the cancel (the reason
by name and code: ``INSUFFICIENT_FUNDS (40)``), the gateway was busy, or it refused the
logon (an account the key may not trade).

The verb logs on as ``--account``: an account has one session at a time, so this takes
the account over from another connection (which is told ``logged_out superseded``; its
orders stay). Its own session ends with a logout, never cancelling the order.
"""

from __future__ import annotations

import argparse
import functools

from pipeline import gateway_cli as g
from pipeline.client import Client, GatewayError
from pipeline.exitcodes import CommandError, ExitStatus
from stages.gateway import protocol as P

#: seconds to wait, after an order was accepted, for more of its reports (fills, done)
REST_GRACE = 0.25
DEFAULT_WAIT = 10.0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "order", help="send an order (buy, sell) or a cancel through the gateway; print reports"
    )
    verbs = parser.add_subparsers(dest="order_command", metavar="VERB", required=True)
    for side in ("buy", "sell"):
        sub = verbs.add_parser(side, help=f"{side} QTY of SYMBOL", description=__doc__)
        sub.add_argument("symbol", metavar="SYMBOL", help="symbol name (BTC-USD) or id")
        sub.add_argument("qty", metavar="QTY", help="quantity in lots, 1 or more")
        sub.add_argument("--price", metavar="P", help="limit price (default: a market order)")
        sub.add_argument("--tif", choices=("gtc", "ioc", "fok"), default="gtc")
        sub.add_argument("--post-only", action="store_true", help="reject rather than take")
        sub.add_argument("--client-order-id", metavar="CLORDID", help="default: a fresh one")
        _common(sub)
        sub.set_defaults(func=functools.partial(run_new, side))
    cancel = verbs.add_parser("cancel", help="cancel an open order by its client order id")
    cancel.add_argument("client_order_id", metavar="CLORDID")
    _common(cancel)
    cancel.set_defaults(func=run_cancel)


def _common(parser: argparse.ArgumentParser) -> None:
    g.add_connection_arguments(parser)
    parser.add_argument(
        "--wait",
        type=float,
        default=DEFAULT_WAIT,
        metavar="S",
        help="seconds to wait for the logon and each report (default: %(default)g)",
    )
    parser.add_argument("--json", action="store_true", help="speak JSON to the gateway")


def _wait(args: argparse.Namespace) -> float:
    if not 0 < args.wait <= 3600:
        raise CommandError(f"--wait {args.wait:g} is invalid: expected 0 < S <= 3600 seconds")
    return args.wait


def run_new(side: str, args: argparse.Namespace) -> int:
    wait = _wait(args)
    account = g.account(args.account)
    qty = g.integer("QTY", args.qty)
    price = None if args.price is None else g.integer("--price", args.price)
    if price is not None and price < 1:
        raise CommandError(f"--price {price} is invalid: a limit price is 1 or more")
    order = g.build(
        lambda: P.NewOrder(
            client_order_id=args.client_order_id or "cli-check",
            symbol=g.symbol(args.symbol),
            side=side,  # type: ignore[arg-type]
            qty=qty,
            price=price or 0,
            type="market" if price is None else "limit",
            tif=args.tif,
            post_only=args.post_only,
        ),
        {"$.qty": args.qty, "$.price": args.price, "$.symbol": repr(args.symbol),
         "$.client_order_id": repr(args.client_order_id)},
    )  # fmt: skip
    with _connect(args, account, wait) as client:
        cid = client.new_order(
            side,
            order.symbol,  # type: ignore[attr-defined]
            qty,
            price,
            tif=args.tif,
            post_only=args.post_only,
            client_order_id=args.client_order_id,
        )
        print(f"sent {side} {qty} {args.symbol} {'@ ' + str(price) if price else 'at market'} "
              f"as {cid} (account {account})", flush=True)  # fmt: skip
        return _follow(client, cid, wait, ending={"done"}, rests=True)


def run_cancel(args: argparse.Namespace) -> int:
    wait = _wait(args)
    account = g.account(args.account)
    g.build(
        lambda: P.Cancel(client_order_id=args.client_order_id),
        {"$.client_order_id": repr(args.client_order_id)},
    )
    with _connect(args, account, wait) as client:
        client.cancel(args.client_order_id)
        return _follow(client, args.client_order_id, wait, ending={"done"}, rests=False)


def _connect(args: argparse.Namespace, account: int, wait: float) -> Client:
    options = g.curve(args)
    endpoint = g.endpoint(args, "gateway")
    try:
        return Client(
            endpoint,
            account,
            codec="json" if args.json else "msgpack",
            timeout=min(wait, 10.0),
            **options,
        )
    except (GatewayError, ValueError) as error:
        raise g.connect_errors(error) from None


def _follow(client: Client, cid: str, wait: float, *, ending: set[str], rests: bool) -> int:
    """Print ``cid``'s reports until it ends (see the module docstring); the exit status."""
    accepted = False
    while True:
        message = client.next_report(REST_GRACE if accepted else wait)
        if message is None:
            if accepted:
                print(f"resting: {cid} is open in the book", flush=True)
                return ExitStatus.OK
            raise CommandError(
                f"no report about {cid} within {wait:g} s from the gateway at {client.endpoint}",
                ExitStatus.FAILED,
            )
        ours = getattr(message, "client_order_id", None) in (cid, None)
        if not ours:
            continue  # another order of the account
        if isinstance(message, P.LoggedOut):
            raise CommandError(
                f"the gateway ended the session ({message.why}) before {cid} was done",
                ExitStatus.FAILED,
            )
        if isinstance(message, P.MassCancelAck):
            continue
        print(g.describe(message), flush=True)
        if isinstance(message, P.BusinessReject):
            name = g.OPTION_NAMES.get(message.field, message.field)
            raise CommandError(f"the gateway refused it: {name}: {message.text}")
        if isinstance(message, P.Busy):
            raise CommandError(
                "the gateway is busy (the pipeline's input is full): nothing was sent; try again",
                ExitStatus.REFUSED,
            )
        if isinstance(message, P.Rejected):
            raise CommandError(
                f"rejected ({message.request}): {message.reason} ({message.code})",
                ExitStatus.REFUSED,
            )
        if message.kind in ending:
            return ExitStatus.OK
        if isinstance(message, P.Accepted) and rests:
            accepted = True
