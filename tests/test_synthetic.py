"""The synthetic flow: seeded, well-formed, and its amends point at real earlier orders."""

from __future__ import annotations

import numpy as np

from stages.ingest.synthetic import Stamper, SyntheticFlow
from stages.records import CommandType, Side, TimeInForce


def test_same_seed_same_stream():
    whole = SyntheticFlow([1, 2, 3], accounts=10, seed=3).next(3000)
    assert np.array_equal(SyntheticFlow([1, 2, 3], 10, seed=3).next(3000), whole)
    assert not np.array_equal(SyntheticFlow([1, 2, 3], 10, seed=4).next(3000), whole)


def test_commands_are_well_formed():
    flow = SyntheticFlow([5, 9], accounts=7, seed=1)
    commands = np.concatenate([flow.next(5000) for _ in range(4)])
    new = commands[commands["kind"] == CommandType.NEW]
    assert set(np.unique(commands["kind"])) == {
        CommandType.NEW,
        CommandType.CANCEL,
        CommandType.REPLACE,
    }
    assert (new["qty"] > 0).all() and (new["price"] > 0).all()
    assert set(np.unique(commands["symbol"])) == {5, 9}
    assert commands["account"].min() >= 1 and commands["account"].max() <= 7
    assert len(np.unique(new["order_id"])) == len(new), "order ids are never reused"
    ioc = new[new["tif"] == TimeInForce.IOC]
    assert 0.15 < len(ioc) / len(commands) < 0.25
    assert set(np.unique(new["side"])) == {Side.BUY, Side.SELL}


def test_amends_target_an_earlier_order_of_the_same_account_symbol_and_side():
    flow = SyntheticFlow([1, 2], accounts=5, seed=2)
    commands = np.concatenate([flow.next(2000) for _ in range(5)])
    placed = {}
    for row in commands:
        if row["kind"] == CommandType.NEW:
            placed[int(row["order_id"])] = (
                int(row["account"]),
                int(row["symbol"]),
                int(row["side"]),
            )
        else:
            key = (int(row["account"]), int(row["symbol"]), int(row["side"]))
            assert placed.get(int(row["order_id"])) == key, row


def test_funding_and_stamper():
    flow = SyntheticFlow([1], accounts=3)
    deposits = flow.funding(assets=[0, 1], amount=100)
    assert len(deposits) == 6
    assert (deposits["kind"] == CommandType.DEPOSIT).all()
    assert sorted(zip(deposits["account"].tolist(), deposits["symbol"].tolist(), strict=True)) == [
        (a, s) for a in (1, 2, 3) for s in (0, 1)
    ]
    stamper = Stamper(last_seq=10)
    stamped = stamper.stamp(deposits)
    assert stamped["seq"].tolist() == [11, 12, 13, 14, 15, 16]
    assert (stamped["ts_ingest"] > 0).all()
    assert stamper.last_seq == 16
