"""Throttling and ingest validation: token buckets against a reference model, every check."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stages.ingest.throttle import BucketConfig, Throttle, ThrottleConfig
from stages.ingest.validate import validate
from stages.records import CommandFlag, CommandType, OrderType, Reason
from tests.risk_builders import admin, buy, cancel, commands, deposit, replace, sell

MS = 1_000_000  # ns


def reasons(batch):
    return [Reason(r) for r in batch["reason"]]


def test_order_bucket_allows_burst_then_refills_at_rate():
    th = Throttle(ThrottleConfig(orders=BucketConfig(rate=10, burst=3)), max_accounts=8)
    # 4 orders at t=0: burst 3; at +100 ms one token is back
    batch = commands(*(buy(i, i, 1, 10, 1, ts=1000) for i in range(1, 5)))
    batch = np.concatenate([batch, commands(buy(5, 5, 1, 10, 1, ts=1000 + 100 * MS))])
    assert th.check(batch) == 1
    assert reasons(batch) == [0, 0, 0, Reason.THROTTLED, 0]


def test_cancel_bucket_is_separate_and_has_its_own_reason():
    cfg = ThrottleConfig(orders=BucketConfig(1, 1), cancels=BucketConfig(1, 2))
    th = Throttle(cfg, max_accounts=8)
    batch = commands(
        buy(1, 1, 1, 10, 1, ts=5),
        cancel(2, 1, 1, ts=5),
        replace(3, 1, 1, 10, 2, ts=5),
        cancel(4, 1, 1, ts=5),
        buy(5, 2, 1, 10, 1, ts=5),
        buy(6, 3, 2, 10, 1, ts=5),  # another account has its own buckets
    )
    th.check(batch)
    assert reasons(batch) == [0, 0, 0, Reason.THROTTLED_CANCEL, Reason.THROTTLED, 0]


def test_symbol_guard_counts_every_client_and_refused_messages_cost_nothing():
    cfg = ThrottleConfig(orders=BucketConfig(1, 1), symbol=BucketConfig(1000, 2))
    th = Throttle(cfg, max_accounts=8)
    batch = commands(
        buy(1, 1, 1, 10, 1, ts=7),
        buy(2, 2, 1, 10, 1, ts=7),  # client bucket empty: does not use a symbol token
        buy(3, 3, 2, 10, 1, ts=7),
        buy(4, 4, 3, 10, 1, ts=7),  # symbol guard: 2 per burst
        buy(5, 5, 4, 10, 1, ts=7, symbol=2),  # another symbol
        buy(6, 6, 3, 10, 1, ts=7 + MS),  # 1 ms later one symbol token is back
    )
    th.check(batch)
    assert reasons(batch) == [0, Reason.THROTTLED, 0, Reason.SYMBOL_RATE, 0, 0]


def test_admin_commands_and_already_refused_commands_are_not_throttled():
    th = Throttle(ThrottleConfig(orders=BucketConfig(1, 1)), max_accounts=8)
    batch = commands(deposit(1, 1, 0, 5), buy(2, 1, 1, 10, 1), buy(3, 2, 1, 10, 1))
    batch["reason"][1] = Reason.INVALID_QTY
    th.check(batch)
    assert reasons(batch) == [0, Reason.INVALID_QTY, 0]


def test_time_going_backwards_refills_nothing():
    th = Throttle(ThrottleConfig(orders=BucketConfig(1000, 1)), max_accounts=4)
    batch = commands(buy(1, 1, 1, 1, 1, ts=10 * MS), buy(2, 2, 1, 1, 1, ts=MS))
    th.check(batch)
    assert reasons(batch) == [0, Reason.THROTTLED]


def test_bucket_config_names_the_bad_field():
    with pytest.raises(ValueError, match=r"burst = 0 .*expected 1\.\."):
        BucketConfig(rate=5, burst=0)


@settings(max_examples=80, deadline=None)
@given(
    rate=st.integers(1, 2000),
    burst=st.integers(1, 5),
    steps=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3 * MS)), min_size=1, max_size=60),
    cuts=st.lists(st.integers(0, 60), max_size=4),
)
def test_buckets_match_a_reference_model_in_any_batching(rate, burst, steps, cuts):
    """Decisions equal an exact-fraction model's, however the stream is cut into batches."""
    from fractions import Fraction

    t = 0
    rows = []
    for i, (account, gap) in enumerate(steps):
        t += gap
        rows.append(buy(i + 1, i + 1, account + 1, 10, 1, ts=t))
    stream = commands(*rows)
    th = Throttle(ThrottleConfig(orders=BucketConfig(rate, burst)), max_accounts=8)
    bounds = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    for lo, hi in itertools.pairwise(bounds):
        th.check(stream[lo:hi])
    tokens = {a: Fraction(burst) for a in range(1, 5)}
    last = dict.fromkeys(range(1, 5), 0)
    expected = []
    for row in rows:
        a, ts = row["account"], row["ts_ingest"]
        tokens[a] = min(Fraction(burst), tokens[a] + Fraction((ts - last[a]) * rate, 10**9))
        last[a] = ts
        if tokens[a] >= 1:
            tokens[a] -= 1
            expected.append(0)
        else:
            expected.append(Reason.THROTTLED)
    assert list(stream["reason"]) == expected


def test_throttle_state_round_trips():
    cfg = ThrottleConfig(orders=BucketConfig(5, 2), symbol=BucketConfig(7, 3))
    th = Throttle(cfg, max_accounts=4)
    th.check(commands(buy(1, 1, 1, 1, 1, ts=3), sell(2, 2, 2, 1, 1, ts=9)))
    twin = Throttle(cfg, max_accounts=4)
    twin.load_state(th.state())
    assert twin.state_hash() == th.state_hash()


# --- validation -------------------------------------------------------------------------------


def test_validate_refuses_each_malformed_field():
    rows = [
        buy(1, 1, 1, 10, 1),  # fine
        dict(seq=2, kind=99, account=1),  # unknown kind
        buy(3, 3, 1, 10, 0),  # qty
        buy(4, 4, 1, 0, 1),  # limit price
        buy(5, 5, 1, -1, 1, market=True),  # negative protection price
        buy(6, 0, 1, 10, 1),  # order id
        buy(7, 7, 0, 10, 1),  # account 0
        buy(8, 8, 8, 10, 1),  # account beyond max_accounts
        dict(buy(9, 9, 1, 10, 1), side=2),
        dict(buy(10, 10, 1, 10, 1), tif=3),
        dict(buy(11, 11, 1, 10, 1), stp=5),
        dict(buy(12, 12, 1, 10, 1), flags=2),
        dict(buy(13, 13, 1, 10, 1), flags=CommandFlag.POST_ONLY, tif=1),  # post-only IOC
        dict(buy(14, 14, 1, 10, 1), order_type=OrderType.MARKET, flags=CommandFlag.POST_ONLY),
        deposit(15, 1, 0, 0),
        replace(16, 1, 1, 0, 5),
        replace(17, 1, 1, 5, 0),
        dict(seq=18, kind=CommandType.REDUCE, order_id=1, account=1, qty=0),
        cancel(19, 0, 1),
        admin(20, CommandType.KILL_SWITCH, 0),  # account 0 = everyone: fine
        admin(21, CommandType.HALT, 9),
        buy(22, 22, 1, 0, 3, market=True),  # market order without protection: fine
        dict(buy(23, 23, 1, 10, 1), flags=CommandFlag.POST_ONLY),  # fine
    ]
    batch = commands(*rows)
    assert validate(batch, max_accounts=8) == 19
    R = Reason
    assert reasons(batch) == [
        0, R.INVALID_COMMAND, R.INVALID_QTY, R.INVALID_PRICE, R.INVALID_PRICE,
        R.INVALID_COMMAND, R.UNKNOWN_ACCOUNT, R.UNKNOWN_ACCOUNT, R.INVALID_COMMAND,
        R.INVALID_COMMAND, R.INVALID_COMMAND, R.INVALID_COMMAND, R.INVALID_COMMAND,
        R.INVALID_COMMAND, R.INVALID_QTY, R.INVALID_PRICE, R.INVALID_QTY, R.INVALID_QTY,
        R.INVALID_COMMAND, 0, R.UNKNOWN_ACCOUNT, 0, 0,
    ]  # fmt: skip


def test_validate_sequenced_finds_a_bad_seq_and_then_writes_nothing():
    from stages.ingest.validate import validate_sequenced

    batch = commands(buy(5, 1, 1, 10, 0), buy(6, 2, 1, 10, 1), buy(6, 3, 1, 10, 1))
    assert validate_sequenced(batch, 8, last_seq=4) == (0, 2)
    assert list(batch["reason"]) == [0, 0, 0]
    assert validate_sequenced(batch[:2], 8, last_seq=4) == (1, -1)
    assert validate_sequenced(batch[:2].copy(), 8, last_seq=5) == (0, 0)
