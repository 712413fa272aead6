"""``tradepipe run`` and ``tradepipe replay --journal``: config, the main job, recovery checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.config import ConfigError, RunConfig, load_config


def write_config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "run.toml"
    journal, snapshots = tmp_path / "journal", tmp_path / "snapshots"
    path.write_text(
        f'[journal]\ndirectory = "{journal}"\n[snapshots]\ndirectory = "{snapshots}"\n'
        f"every_records = 3000\n{body}"
    )
    return path


def test_no_file_gives_the_embedded_defaults():
    config = load_config(None)
    assert config == RunConfig()
    assert config.journal.fsync == "batch"
    assert [i.name for i in config.engine.risk.instruments] == ["BTC-USD", "ETH-USD"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[load]\norders = 0\n", r"Expected `int` >= 1 - at `\$.load.orders`"),
        (
            '[journal]\nfsync = "sometimes"\n',
            r"Invalid enum value 'sometimes' - at `\$.journal.fsync`",
        ),
        ("[lod]\norders = 5\n", "unknown field `lod`"),
        ("[engine.risk]\nmax_accounts = 1\n", r"max_accounts = 1 is invalid: expected 2..2\*\*24"),
        ("[load\n", "is not valid TOML"),
    ],
)
def test_bad_config_names_the_file_and_the_field(tmp_path, body, message):
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(path)
    assert str(path) in str(caught.value)


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


@pytest.mark.timeout(300)
def test_run_journals_snapshots_and_proves_recovery(tmp_path, capsys):
    config = write_config(tmp_path, "[load]\norders = 20000\nbatch = 500\naccounts = 50\n")
    assert main(["run", str(config)]) == 0
    out = capsys.readouterr().out
    assert "orders processed" in out and "20,000" in out
    assert out.count("match") == 2, out  # restart and audit replays both match
    assert "DIFFERS" not in out
    assert list((tmp_path / "journal").iterdir())
    assert len(list((tmp_path / "snapshots").iterdir())) >= 2

    # the same journal replays to the same hash through the CLI
    hashes = []
    for extra in ([], ["--from-start"]):
        assert (
            main(
                [
                    "replay",
                    "--journal",
                    str(tmp_path / "journal"),
                    "--snapshots",
                    str(tmp_path / "snapshots"),
                    *extra,
                ]
            )
            == 0
        )
        hashes.append(capsys.readouterr().out.strip().splitlines()[-1])
    assert hashes[0] == hashes[1] and hashes[0].startswith("state hash ")

    # a flipped bit before the tail stops the replay with the file and offset, never skipped
    segment = sorted((tmp_path / "journal").iterdir())[0]
    data = bytearray(segment.read_bytes())
    data[len(data) // 3] ^= 0x10
    segment.write_bytes(bytes(data))
    assert main(["replay", "--journal", str(tmp_path / "journal"), "--from-start"]) == 1
    error = capsys.readouterr().err
    assert str(segment) in error and "offset" in error


@pytest.mark.timeout(300)
def test_run_refuses_to_mix_runs_without_fresh(tmp_path, capsys):
    config = write_config(tmp_path, "[load]\norders = 1000\n")
    assert main(["run", str(config)]) == 0
    capsys.readouterr()
    assert main(["run", str(config)]) == 2
    assert "already holds a run; pass --fresh" in capsys.readouterr().err
    assert main(["run", str(config), "--fresh", "--orders", "500"]) == 0


def test_replay_of_a_missing_or_corrupt_journal_fails_clearly(tmp_path, capsys):
    assert main(["replay", "--journal", str(tmp_path / "none")]) == 1
    assert "tradepipe replay:" in capsys.readouterr().err
    assert main(["replay"]) == 2
    assert "--journal DIR" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ("[engine]\nsettle_evry = 5\n", "settle_evry"),
        ("[engine.risk]\nmax_acounts = 5\n", "max_acounts"),
        ("[[engine.risk.instruments]]\nsymbol = 1\nbase = 1\nquote = 0\ntick = 5\n", "tick"),
        ("[engine.throttle]\norders = { rate = 1, brust = 2 }\n", "brust"),
    ],
)
def test_a_misspelt_engine_key_is_refused_not_ignored(tmp_path, body, where):
    path = tmp_path / "typo.toml"
    path.write_text(body)
    with pytest.raises(ConfigError, match=f"unknown field `{where}`"):
        load_config(path)
