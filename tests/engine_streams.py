"""Random command streams for the whole in-process ``Engine``: a small venue config, a
hypothesis strategy of op batches (new orders, cancels, replaces, reduces, deposits,
withdrawals, kill switches, halts) and ``build``, which turns them into sequenced command
batches after a funding batch. ``test_engine_properties`` checks the engine's invariants
over them and ``test_state_hash`` its state hash.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from stages.engine import EngineConfig
from stages.ingest.throttle import BucketConfig, ThrottleConfig
from stages.records import COMMAND_DTYPE, CommandType, OrderType
from stages.risk.config import (
    AccountLimits,
    AssetConfig,
    InstrumentConfig,
    RiskConfig,
)

USD, BTC, ETH = 0, 1, 2
ACCOUNTS = (1, 2, 3)

CONFIG = EngineConfig(
    risk=RiskConfig(
        assets=[AssetConfig(USD), AssetConfig(BTC), AssetConfig(ETH)],
        instruments=[
            InstrumentConfig(
                symbol=1,
                base=BTC,
                quote=USD,
                base_per_lot=2,
                quote_per_price_lot=3,
                maker_fee_bps=10,
                taker_fee_bps=25,
                collar_bps=3000,
                reference_price=100,
                market_band_bps=1000,
                tick_size=1,
            ),
            InstrumentConfig(
                symbol=2,
                base=ETH,
                quote=BTC,
                maker_fee_bps=0,
                taker_fee_bps=100,
                tick_size=5,
                lot_size=2,
            ),
        ],
        max_accounts=8,
        order_capacity=256,
        default_limits=AccountLimits(max_open_orders=12, max_order_qty=40),
    ),
    throttle=ThrottleConfig(orders=BucketConfig(rate=2000, burst=20)),
    matching_order_capacity=64,
    settle_every=3,  # small settlement windows: batches end inside and across them
)

account = st.sampled_from(ACCOUNTS)
oid = st.integers(1, 12)
price = st.integers(80, 125)

new_order = st.tuples(
    st.just("new"), account, oid, st.integers(0, 1), price, st.integers(1, 30),
    st.sampled_from([1, 1, 1, 2]), st.sampled_from([0, 0, 0, 1]), st.sampled_from([0, 0, 0, 1, 2]),
    st.integers(0, 4),
)  # fmt: skip
other_op = st.one_of(
    st.tuples(st.just("deposit"), account, st.sampled_from([USD, BTC, ETH]), st.integers(1, 5000)),
    st.tuples(st.just("withdraw"), account, st.sampled_from([USD, BTC, ETH]), st.integers(1, 3000)),
    st.tuples(st.just("cancel"), account, oid, st.sampled_from([1, 2])),
    st.tuples(st.just("cancel"), account, oid, st.sampled_from([1, 2])),
    st.tuples(st.just("replace"), account, oid, price, st.integers(1, 30), st.sampled_from([1, 2])),
    st.tuples(st.just("replace"), account, oid, price, st.integers(1, 30), st.sampled_from([1, 2])),
    st.tuples(st.just("reduce"), account, oid, st.integers(1, 10), st.sampled_from([1, 2])),
    st.tuples(st.just("kill"), st.sampled_from((0, *ACCOUNTS)), st.sampled_from([1, 0, 0, 0])),
    st.tuples(st.just("halt"), st.sampled_from([1, 2]), st.sampled_from([1, 0, 0])),
)  # fmt: skip
# 60 % new orders, whatever hypothesis's choice among branches favours
op = st.tuples(st.integers(0, 9), new_order, other_op).map(lambda t: t[1] if t[0] < 6 else t[2])
batches_strategy = st.lists(st.lists(op, min_size=1, max_size=25), min_size=1, max_size=8)


def build(batches: list[list[tuple]], funding_amount: int = 20_000) -> list[np.ndarray]:
    """Turn op tuples into sequenced command batches with increasing timestamps."""
    funding = [("deposit", a, x, funding_amount) for a in ACCOUNTS for x in (USD, BTC, ETH)]
    out = []
    seq = 0
    for ops in [funding, *batches]:
        batch = np.zeros(len(ops), dtype=COMMAND_DTYPE)
        for i, o in enumerate(ops):
            seq += 1
            r = batch[i]
            r["seq"] = seq
            r["ts_ingest"] = 1_000_000 * seq
            kind = o[0]
            if kind in ("deposit", "withdraw"):
                r["kind"] = CommandType.DEPOSIT if kind == "deposit" else CommandType.WITHDRAW
                r["account"], r["symbol"], r["qty"] = o[1], o[2], o[3]
            elif kind == "new":
                _, a, order_id, side, p, q, sym, market, tif, stp = o
                r["kind"] = CommandType.NEW
                r["account"], r["order_id"], r["side"], r["qty"], r["symbol"] = (
                    a, order_id, side, q, sym
                )  # fmt: skip
                r["price"] = 0 if market else p * (5 if sym == 2 else 1)
                r["order_type"] = OrderType.MARKET if market else OrderType.LIMIT
                r["tif"], r["stp"] = tif, stp
            elif kind == "cancel":
                r["kind"] = CommandType.CANCEL
                r["account"], r["order_id"], r["symbol"] = o[1], o[2], o[3]
            elif kind == "replace":
                r["kind"] = CommandType.REPLACE
                r["account"], r["order_id"], r["qty"], r["symbol"] = o[1], o[2], o[4], o[5]
                r["price"] = o[3] * (5 if o[5] == 2 else 1)
            elif kind == "reduce":
                r["kind"] = CommandType.REDUCE
                r["account"], r["order_id"], r["qty"], r["symbol"] = o[1], o[2], o[3], o[4]
            elif kind == "kill":
                r["kind"] = CommandType.KILL_SWITCH if o[2] else CommandType.KILL_SWITCH_RELEASE
                r["account"] = o[1]
            else:
                r["kind"] = CommandType.HALT if o[2] else CommandType.RESUME
                r["symbol"] = o[1]
        out.append(batch)
    return out
