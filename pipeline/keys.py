"""ZeroMQ CURVE keys for the gateway's ``tcp://`` endpoints: made, bound to accounts, read.

A key pair is two files in ZeroMQ's certificate format (``zmq.auth``, the ZPL text czmq
and pyzmq write): ``NAME.key``, the public certificate, which may be copied anywhere, and
``NAME.key_secret``, which holds the secret key too and is mode 0600. A *client*
certificate also names, in its metadata, the accounts that key may trade::

    metadata
        accounts = "1,2"
    curve
        public-key = "..."

The gateway's ``[gateway.curve] clients`` directory holds the public certificates of the
clients it lets in (``load_clients``): a key not there never completes the handshake, and
one that is may log on only as one of its accounts. Why in the certificate: the file that
lets a key in is the file that says what it may do, so the two cannot drift apart, and an
operator revokes a client by deleting one file. A *server* certificate (``--server``)
carries no accounts; the gateway reads its secret file (``load_server_key``) and clients
are given its public key.

``zmq.auth.create_certificates`` writes the metadata into the secret file only, and
overwrites whatever is there; so the pair is created in a private scratch directory, the
public file is written again with the metadata, and both are linked into place with
``os.link``, which refuses an existing name: an existing key is never replaced, not even
by two ``keys new`` racing each other.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth

from stages.gateway.protocol import MAX_ACCOUNT

PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"
#: key names: what is safe in a file name on every system, without a leading dot
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: a z85-encoded CURVE key is 40 characters of this alphabet
Z85_KEY = re.compile(r"^[0-9a-zA-Z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}$")
_METADATA_LINE = re.compile(r"^\s+(?P<key>[A-Za-z0-9_.-]+)\s*=\s*(?P<value>.*?)\s*$")

_PUBLIC_BANNER = """#   ZeroMQ CURVE Public Certificate (tradepipe keys new)
#   Give this file to the gateway's operator ([gateway.curve] clients) or, for a
#   server key, to its clients. It names the accounts the key may trade.

"""


class KeyFileError(ValueError):
    """A key file or directory that cannot be used; the message names the file."""


@dataclass(frozen=True)
class KeyPair:
    """The two files ``new_keys`` wrote and the public key they hold (z85)."""

    public_file: Path
    secret_file: Path
    public_key: str
    accounts: tuple[int, ...]


def parse_accounts(text: str) -> tuple[int, ...]:
    """``"1,2,5"`` as (1, 2, 5): each 1..2**32-1, no repeats; a ``ValueError`` saying which
    item is wrong otherwise."""
    items = [item.strip() for item in text.split(",")]
    if not text.strip() or any(not item for item in items):
        raise ValueError(f"accounts {text!r}: expected account numbers separated by commas (1,2)")
    accounts: list[int] = []
    for item in items:
        if not item.isdecimal():
            raise ValueError(f"accounts {text!r}: {item!r} is not an account number")
        account = int(item)
        if not 1 <= account <= MAX_ACCOUNT:
            raise ValueError(
                f"accounts {text!r}: account {account} is out of range 1..{MAX_ACCOUNT}"
            )
        if account in accounts:
            raise ValueError(f"accounts {text!r}: account {account} is named twice")
        accounts.append(account)
    return tuple(accounts)


def new_keys(
    name: str, directory: str | Path, accounts: Iterable[int] = (), *, server: bool = False
) -> KeyPair:
    """Create ``NAME.key`` and ``NAME.key_secret`` (0600) in ``directory``.

    A client key (``server`` False) must name at least one account; a server key names
    none. Refuses (``FileExistsError`` naming the file) to replace an existing file.
    """
    accounts = tuple(accounts)
    if not NAME.match(name):
        raise ValueError(
            f"key name {name!r}: use 1..64 letters, digits, '_', '.', '-' (not starting "
            "with '.' or '-')"
        )
    if server and accounts:
        raise ValueError("a server key trades no account: leave out --accounts with --server")
    if not server and not accounts:
        raise ValueError("a client key needs the accounts it may trade (--accounts 1,2)")
    if accounts:
        parse_accounts(",".join(str(a) for a in accounts))  # the same checks
    directory = Path(directory)
    public, secret = directory / f"{name}{PUBLIC_SUFFIX}", directory / f"{name}{SECRET_SUFFIX}"
    for path in (public, secret):
        if os.path.lexists(path):
            raise FileExistsError(f"{path} already exists: keys are never overwritten")
    if not directory.is_dir():
        raise FileNotFoundError(f"key directory {directory} does not exist")
    metadata = {"accounts": _quote(",".join(map(str, accounts)))} if accounts else {}
    metadata["role"] = _quote("server" if server else "client")
    scratch = Path(tempfile.mkdtemp(prefix=".keys-", dir=directory))  # 0700, same file system
    try:
        made_public, made_secret = zmq.auth.create_certificates(scratch, name, metadata)
        os.chmod(made_secret, 0o600)
        public_key, _ = zmq.auth.load_certificate(made_public)
        _write_public(Path(made_public), public_key.decode("ascii"), metadata)
        os.link(made_secret, secret)  # FileExistsError if one appeared meanwhile
        try:
            os.link(made_public, public)
        except BaseException:
            secret.unlink()
            raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return KeyPair(public, secret, public_key.decode("ascii"), accounts)


def _quote(value: str) -> str:
    return f'"{value}"'


def _write_public(path: Path, public_key: str, metadata: dict[str, str]) -> None:
    """The public certificate with the metadata (create_certificates leaves it out)."""
    lines = [_PUBLIC_BANNER, "metadata\n"]
    lines += [f"    {key} = {value}\n" for key, value in metadata.items()]
    lines += ["curve\n", f'    public-key = "{public_key}"\n']
    path.write_text("".join(lines), encoding="ascii")


def read_certificate(path: str | Path) -> tuple[str, str | None, dict[str, str]]:
    """(public key, secret key or None, metadata) of a certificate file, keys as z85 text.

    ``KeyFileError`` naming the file if it cannot be read or holds no valid public key.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise KeyFileError(f"key file {path}: cannot read it: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise KeyFileError(f"key file {path}: not a ZeroMQ certificate (not text)") from None
    section = None
    metadata: dict[str, str] = {}
    keys: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            section = line.strip()
            continue
        match = _METADATA_LINE.match(line)
        if match is None:
            continue
        value = match["value"].strip("'\"")
        if section == "metadata":
            metadata[match["key"]] = value
        elif section == "curve":
            keys[match["key"]] = value
    public, secret = keys.get("public-key"), keys.get("secret-key")
    if public is None:
        raise KeyFileError(f"key file {path}: no public-key in its curve section")
    for what, key in (("public", public), ("secret", secret)):
        if key is not None and not Z85_KEY.match(key):
            raise KeyFileError(f"key file {path}: its {what} key is not a 40-character z85 key")
    return public, secret, metadata


def load_server_key(path: str | Path) -> tuple[bytes, bytes]:
    """(public, secret) z85 keys of the server's secret file, as bytes, ready for the
    socket options (``curve_publickey``, ``curve_secretkey``)."""
    public, secret, _ = read_certificate(path)
    if secret is None:
        raise KeyFileError(
            f"key file {path}: holds no secret key: name the server's {SECRET_SUFFIX} file"
        )
    return public.encode("ascii"), secret.encode("ascii")


def load_client_keys(path: str | Path) -> tuple[bytes, bytes]:
    """(public, secret) z85 keys of a client's ``NAME.key_secret`` (for ``Client(keys=)``)."""
    return load_server_key(path)


def load_public_key(path: str | Path) -> bytes:
    """The z85 public key of a certificate file (a server's ``NAME.key``)."""
    return read_certificate(path)[0].encode("ascii")


def load_clients(directory: str | Path) -> dict[str, tuple[int, ...]]:
    """Every ``*.key`` of ``directory``: client public key (z85 text, ZeroMQ's User-Id of
    a CURVE peer) → the accounts it may trade.

    A file without accounts (a server key, or one made by another tool), an unreadable one,
    a bad key or the same key twice is a ``KeyFileError`` naming the file: a directory of
    authorised keys is loaded whole or not at all.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise KeyFileError(f"client key directory {directory} does not exist or is not a directory")
    clients: dict[str, tuple[int, ...]] = {}
    where: dict[str, Path] = {}
    for path in sorted(directory.glob(f"*{PUBLIC_SUFFIX}")):
        public, _, metadata = read_certificate(path)
        if "accounts" not in metadata:
            raise KeyFileError(
                f"key file {path}: names no accounts (a client certificate carries "
                'accounts = "1,2" in its metadata; tradepipe keys new --accounts writes it)'
            )
        try:
            accounts = parse_accounts(metadata["accounts"])
        except ValueError as error:
            raise KeyFileError(f"key file {path}: {error}") from None
        if public in clients:
            raise KeyFileError(f"key file {path}: the same key as {where[public]}")
        clients[public], where[public] = accounts, path
    return clients


def is_z85_key(text: str | bytes) -> bool:
    """Whether ``text`` looks like a z85 CURVE key (40 characters of z85's alphabet)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            return False
    return bool(Z85_KEY.match(text))


def check_curve_available() -> None:
    """``RuntimeError`` unless this libzmq was built with CURVE."""
    if not zmq.has("curve"):
        raise RuntimeError("this libzmq has no CURVE support (built without libsodium)")
