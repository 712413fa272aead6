"""CURVE key files (``pipeline.keys``, ``tradepipe keys new``): made with ZeroMQ's
certificate writer, the accounts in the public certificate, the secret 0600, nothing ever
overwritten; a directory of client keys loads whole or names the file that is wrong."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import zmq.auth

from pipeline import keys
from pipeline.cli import main

pytestmark = pytest.mark.timeout(30)


def test_a_client_pair_names_its_accounts_and_keeps_its_secret(tmp_path):
    pair = keys.new_keys("alice", tmp_path, (1, 2))
    assert (pair.public_file.name, pair.secret_file.name) == ("alice.key", "alice.key_secret")
    assert stat.S_IMODE(pair.secret_file.stat().st_mode) == 0o600
    public, secret, metadata = keys.read_certificate(pair.public_file)
    assert secret is None and public == pair.public_key
    assert metadata["accounts"] == "1,2"
    assert 'accounts = "1,2"' in pair.public_file.read_text()
    # zmq's own reader agrees with ours, and the pair is a real CURVE pair
    z_public, z_secret = zmq.auth.load_certificate(pair.secret_file)
    assert z_public.decode() == public and zmq.curve_public(z_secret) == z_public
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alice.key", "alice.key_secret"]


def test_a_server_key_loads_as_a_socket_key_pair(tmp_path):
    pair = keys.new_keys("server", tmp_path, server=True)
    public, secret = keys.load_server_key(pair.secret_file)
    assert zmq.curve_public(secret) == public
    assert keys.load_public_key(pair.public_file) == public
    with pytest.raises(keys.KeyFileError, match=r"server\.key: holds no secret key"):
        keys.load_server_key(pair.public_file)


def test_existing_files_are_never_overwritten(tmp_path):
    keys.new_keys("alice", tmp_path, (1,))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(FileExistsError, match=r"alice\.key already exists"):
        keys.new_keys("alice", tmp_path, (2,))
    (tmp_path / "bob.key_secret").write_text("mine")
    with pytest.raises(FileExistsError, match=r"bob\.key_secret already exists"):
        keys.new_keys("bob", tmp_path, (2,))
    assert not (tmp_path / "bob.key").exists()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if "bob" not in p.name} == before


@pytest.mark.parametrize(
    ("name", "accounts", "server", "message"),
    [
        ("../up", (1,), False, r"key name '\.\./up'"),
        (".hidden", (1,), False, r"key name"),
        ("c", (), False, r"a client key needs the accounts"),
        ("s", (1,), True, r"a server key trades no account"),
        ("c", (0,), False, r"account 0 is out of range"),
    ],
)
def test_bad_requests_are_refused(tmp_path, name, accounts, server, message):
    with pytest.raises(ValueError, match=message):
        keys.new_keys(name, tmp_path, accounts, server=server)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected account numbers"),
        ("1,,2", "expected account numbers"),
        ("1,x", "'x' is not an account number"),
        ("1,-2", "'-2' is not an account number"),
        ("1,1", "account 1 is named twice"),
        (str(2**32), "out of range"),
    ],
)
def test_parse_accounts(text, message):
    with pytest.raises(ValueError, match=message):
        keys.parse_accounts(text)
    assert keys.parse_accounts(" 3, 1 ") == (3, 1)


def test_load_clients_maps_keys_to_accounts(tmp_path):
    a = keys.new_keys("a", tmp_path, (1, 2))
    b = keys.new_keys("b", tmp_path, (3,))
    clients = tmp_path / "clients"
    clients.mkdir()
    for pair in (a, b):
        os.link(pair.public_file, clients / pair.public_file.name)
    (clients / "README").write_text("only *.key files count")
    assert keys.load_clients(clients) == {a.public_key: (1, 2), b.public_key: (3,)}


def _clients_with(tmp_path: Path, name: str, text: str | bytes) -> Path:
    clients = tmp_path / "clients"
    clients.mkdir()
    keys.new_keys("ok", clients, (1,))
    (clients / "ok.key_secret").unlink()
    path = clients / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return clients


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('metadata\ncurve\n    public-key = "{key}"\n', r"bad\.key: names no accounts"),
        ('metadata\n    accounts = "1,x"\ncurve\n    public-key = "{key}"\n', r"'x' is not"),
        ('metadata\n    accounts = "1"\ncurve\n    public-key = "short"\n', r"not a 40-char"),
        ('metadata\n    accounts = "1"\n', r"bad\.key: no public-key"),
        (b"\xff\xfe\x00garbage", r"bad\.key: not a ZeroMQ certificate"),
    ],
)
def test_a_bad_client_file_is_named(tmp_path, text, message):
    if isinstance(text, str):
        text = text.replace("{key}", zmq.curve_keypair()[0].decode())
    clients = _clients_with(tmp_path, "bad.key", text)
    with pytest.raises(keys.KeyFileError, match=message):
        keys.load_clients(clients)


def test_the_same_key_twice_is_named(tmp_path):
    clients = _clients_with(tmp_path, "x", "")
    (clients / "x").unlink()
    (clients / "copy.key").write_bytes((clients / "ok.key").read_bytes())
    with pytest.raises(keys.KeyFileError, match=r"ok\.key: the same key as .*copy\.key"):
        keys.load_clients(clients)


def test_an_unreadable_or_missing_directory_is_named(tmp_path):
    with pytest.raises(keys.KeyFileError, match=r"nope does not exist"):
        keys.load_clients(tmp_path / "nope")
    clients = _clients_with(tmp_path, "dir.key", "")
    (clients / "dir.key").unlink()
    (clients / "dir.key").mkdir()
    with pytest.raises(keys.KeyFileError, match=r"dir\.key: cannot read it"):
        keys.load_clients(clients)


def test_the_verb_writes_and_prints(tmp_path, capsys):
    assert main(["keys", "new", "trader", "--accounts", "7,8", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    public = keys.read_certificate(tmp_path / "trader.key")[0]
    assert f"public key (client of accounts 7,8): {public}" in out
    assert main(["keys", "new", "venue", "--server", "--dir", str(tmp_path)]) == 0
    assert keys.read_certificate(tmp_path / "venue.key")[2]["role"] == "server"
