"""``tradepipe keys new NAME [--accounts 1,2] [--server] [--dir DIR]``: a ZeroMQ CURVE key
pair for the gateway's ``tcp://`` endpoints (``pipeline.keys``).

Writes ``DIR/NAME.key`` (public: give it to the gateway's operator, who puts it in the
``[gateway.curve] clients`` directory; a server's to its clients) and ``DIR/NAME.key_secret``
(mode 0600: keep it). A client key names the accounts it may trade; a server key none.
Prints the two paths and the public key. An existing file is never replaced (exit 2); a
directory this user may not write is refused (exit 4).
"""

from __future__ import annotations

import argparse

from pipeline import keys
from pipeline.exitcodes import CommandError, ExitStatus, os_error_status


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("keys", help="CURVE keys for the gateway's tcp:// endpoints")
    verbs = parser.add_subparsers(dest="keys_command", metavar="VERB", required=True)
    new = verbs.add_parser(
        "new",
        help="create NAME.key (public) and NAME.key_secret (0600)",
        description=__doc__.split("\n\n")[1].replace("\n", " "),
    )
    new.add_argument("name", metavar="NAME", help="the key's name: NAME.key, NAME.key_secret")
    new.add_argument(
        "--accounts",
        metavar="1,2,...",
        help="the accounts a client key may trade (required for a client key)",
    )
    new.add_argument("--server", action="store_true", help="a server key (no accounts)")
    new.add_argument("--dir", default=".", metavar="DIR", help="where to write (default: .)")
    new.set_defaults(func=run_new)


def run_new(args: argparse.Namespace) -> int:
    try:
        accounts = keys.parse_accounts(args.accounts) if args.accounts is not None else ()
        pair = keys.new_keys(args.name, args.dir, accounts, server=args.server)
    except FileExistsError as error:
        raise CommandError(str(error)) from None
    except FileNotFoundError as error:
        raise CommandError(f"{error}: create it first or name another --dir") from None
    except ValueError as error:
        raise CommandError(str(error)) from None
    except OSError as error:
        raise CommandError(
            f"cannot write keys in {args.dir}: {error.strerror or error}", os_error_status(error)
        ) from None
    role = "server" if args.server else f"client of accounts {','.join(map(str, pair.accounts))}"
    print(f"public key ({role}): {pair.public_key}")
    print(f"public:  {pair.public_file}")
    print(f"secret:  {pair.secret_file} (0600: keep it)")
    return ExitStatus.OK
