"""Market data from matching's events: DepthBuilder's messages and LocalBook's book.

The reference is the matching engine itself: whatever commands it processes, a
``LocalBook`` that applied every message the builder made from its events holds exactly
``MatchingEngine.depth(symbol, N)`` after every batch — from the start, as a late joiner
(snapshot mid-stream), and after a lost message was detected and repaired by a snapshot.
"""

from __future__ import annotations

import itertools

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stages.marketdata import (
    BBO,
    TOPIC_PREFIX,
    UPDATES,
    Applied,
    Depth,
    DepthBuilder,
    InconsistentEvents,
    LevelUpdate,
    LocalBook,
    Snapshot,
    Status,
    Trades,
    TradeTick,
    decode,
    decode_json,
    encode,
    encode_json,
    topic,
)
from stages.matching import MatchingEngine, SymbolSpec
from stages.records import (
    COMMAND_DTYPE,
    EVENT_DTYPE,
    CommandType,
    EventType,
    OrderType,
    SelfTradePrevention,
    Side,
    TimeInForce,
)
from tests.matching_streams import SPECS, random_stream

BUY, SELL = Side.BUY, Side.SELL
ONE = (SymbolSpec(1),)


# ---------------------------------------------------------------- helpers
def to_commands(rows: list[tuple]) -> np.ndarray:
    """``random_stream`` rows as commands with seqs from 1, whatever the row's padding.

    The rows are tuples in COMMAND_DTYPE's field order; the trailing fields (``origin``,
    the padding) are filled by name so a change of the padding does not break this file.
    """
    cmds = np.zeros(len(rows), dtype=COMMAND_DTYPE)
    names = [n for n in COMMAND_DTYPE.names if n not in ("origin", "_pad")]
    for name, column in zip(names, zip(*rows, strict=False), strict=False):
        cmds[name] = column
    cmds["seq"] = np.arange(1, len(cmds) + 1)
    return cmds


def engine_depth(engine: MatchingEngine, symbol: int, levels: int) -> tuple[list, list]:
    bids, asks = engine.depth(symbol, levels)
    return [tuple(int(x) for x in r) for r in bids], [tuple(int(x) for x in r) for r in asks]


class Market:
    """One engine, one builder and one subscribed LocalBook per symbol, fed together."""

    def __init__(self, specs=ONE, levels: int = 10, emit_book_top=True) -> None:
        self.engine = MatchingEngine(list(specs), emit_book_top=emit_book_top)
        self.builder = DepthBuilder(levels)
        self.levels = levels
        self.symbols = [s.symbol for s in specs]
        self.books = {s: LocalBook(s) for s in self.symbols}
        for s in self.symbols:
            assert self.books[s].apply(self.builder.snapshot(s)) is Applied.APPLIED
        self.seq = 0
        self.sent: list = []

    def send(self, *commands: dict) -> list:
        """Process the commands as one batch; every message goes over the wire to the books."""
        cmds = np.zeros(len(commands), dtype=COMMAND_DTYPE)
        for record, fields in zip(cmds, commands, strict=True):
            self.seq += 1
            record["seq"] = self.seq
            for name, value in fields.items():
                record[name] = value
        messages = self.builder.process(self.engine.process(cmds))
        for message in messages:
            assert self.books[message.symbol].apply(decode(encode(message))) is Applied.APPLIED
        self.sent += messages
        return messages

    def check(self) -> None:
        for s in self.symbols:
            assert self.books[s].depth() == engine_depth(self.engine, s, self.levels)


def new(oid, side, price, qty, account=1, symbol=1, tif=TimeInForce.GTC, stp=0, market=False):
    return dict(kind=CommandType.NEW, order_id=oid, side=side, price=price, qty=qty,
                account=account, symbol=symbol, tif=tif, stp=stp,
                order_type=OrderType.MARKET if market else OrderType.LIMIT)  # fmt: skip


def cancel(oid, account=1):
    return dict(kind=CommandType.CANCEL, order_id=oid, account=account)


def replace(oid, price, qty, account=1):
    return dict(kind=CommandType.REPLACE, order_id=oid, price=price, qty=qty, account=account)


def reduce(oid, by, account=1):
    return dict(kind=CommandType.REDUCE, order_id=oid, qty=by, account=account)


def of(messages, kind):
    return [m for m in messages if isinstance(m, kind)]


def levels_of(messages) -> list[tuple]:
    return [(u.side, u.price, u.qty, u.count) for m in of(messages, Depth) for u in m.updates]


# ---------------------------------------------------------------- one event kind at a time
def test_a_passive_order_adds_a_level_and_moves_the_bbo():
    m = Market()
    out = m.send(new(1, BUY, 100, 5))
    assert [type(x) for x in out] == [Depth, BBO]
    assert levels_of(out) == [(BUY, 100, 5, 1)]
    assert of(out, BBO)[0] == BBO(0, 1, 2, 1, 100, 5, 0, 0)
    out = m.send(new(2, BUY, 100, 3, account=2))
    assert levels_of(out) == [(BUY, 100, 8, 2)]
    m.check()


def test_a_partial_fill_of_a_resting_maker_shrinks_its_level_and_is_a_public_trade():
    m = Market()
    m.send(new(1, SELL, 101, 10), new(2, SELL, 102, 4))
    out = m.send(new(3, BUY, 101, 4, account=2))
    assert [type(x) for x in out] == [Trades, Depth, BBO]
    (trades,) = of(out, Trades)
    assert trades.trades == (TradeTick(101, 4, BUY, 0, 3),)
    assert set(TradeTick.__struct_fields__) == {"price", "qty", "side", "ts", "cmd_seq"}
    assert levels_of(out) == [(SELL, 101, 6, 1)]  # the taker filled completely: nothing rests
    m.check()


def test_a_sweep_reports_every_trade_at_the_makers_prices_and_rests_the_rest():
    m = Market()
    m.send(new(1, SELL, 101, 2), new(2, SELL, 102, 3), new(3, SELL, 104, 1))
    out = m.send(new(4, BUY, 103, 10, account=2))
    assert [(t.price, t.qty, t.side) for t in of(out, Trades)[0].trades] == [
        (101, 2, BUY),
        (102, 3, BUY),
    ]
    assert sorted(levels_of(out)) == [(BUY, 103, 5, 1), (SELL, 101, 0, 0), (SELL, 102, 0, 0)]
    assert of(out, BBO)[0].bid_price == 103
    m.check()


def test_an_ioc_remainder_and_a_market_remainder_never_rest():
    m = Market()
    m.send(new(1, SELL, 101, 2))
    out = m.send(new(2, BUY, 105, 5, account=2, tif=TimeInForce.IOC))
    assert levels_of(out) == [(SELL, 101, 0, 0)]
    m.send(new(3, SELL, 101, 2))
    out = m.send(new(4, BUY, 0, 5, account=2, market=True))
    assert levels_of(out) == [(SELL, 101, 0, 0)]
    assert m.books[1].depth() == ([], [])
    m.check()


def test_a_fok_that_cannot_fill_and_a_rejected_order_send_nothing():
    m = Market()
    m.send(new(1, SELL, 101, 2))
    seq = m.builder.seq(1)
    assert m.send(new(2, BUY, 101, 5, account=2, tif=TimeInForce.FOK)) == []
    assert m.send(new(1, BUY, 90, 5)) == []  # duplicate id: REJECTED
    assert m.send(cancel(99)) == []  # unknown order: REJECTED
    assert m.builder.seq(1) == seq
    m.check()


def test_a_cancel_removes_the_qty_and_the_last_order_removes_the_level():
    m = Market()
    m.send(new(1, BUY, 100, 5), new(2, BUY, 100, 7))
    assert levels_of(m.send(cancel(1))) == [(BUY, 100, 7, 1)]
    out = m.send(cancel(2))
    assert levels_of(out) == [(BUY, 100, 0, 0)]
    assert of(out, BBO)[0].bid_price == 0
    m.check()


def test_replace_moving_the_price_or_changing_the_qty_and_reduce():
    m = Market()
    m.send(new(1, BUY, 100, 5), new(2, BUY, 100, 2))
    assert sorted(levels_of(m.send(replace(1, 99, 5)))) == [(BUY, 99, 5, 1), (BUY, 100, 2, 1)]
    assert levels_of(m.send(replace(1, 99, 9))) == [(BUY, 99, 9, 1)]
    assert levels_of(m.send(replace(1, 99, 4))) == [(BUY, 99, 4, 1)]
    assert levels_of(m.send(reduce(2, 1))) == [(BUY, 100, 1, 1)]
    m.check()


def test_a_replace_that_crosses_trades_first_and_rests_its_rest():
    m = Market()
    m.send(new(1, SELL, 102, 3, account=2), new(2, BUY, 100, 5))
    out = m.send(replace(2, 102, 5))
    assert [(t.price, t.qty, t.side) for t in of(out, Trades)[0].trades] == [(102, 3, BUY)]
    assert sorted(levels_of(out)) == [(BUY, 100, 0, 0), (BUY, 102, 2, 1), (SELL, 102, 0, 0)]
    m.check()


@pytest.mark.parametrize("mode", list(SelfTradePrevention))
def test_self_trade_prevention_cancels(mode):
    m = Market()
    m.send(new(1, SELL, 101, 4), new(2, SELL, 101, 3, account=2), new(3, SELL, 102, 6))
    m.send(new(4, BUY, 102, 5, stp=mode))
    m.check()
    m.send(new(5, SELL, 99, 1, stp=mode), new(6, BUY, 101, 8, account=2, stp=mode))
    m.check()


def test_a_kill_switch_empties_the_accounts_levels():
    m = Market(specs=(SymbolSpec(1), SymbolSpec(2)))
    m.send(new(1, BUY, 100, 5), new(2, SELL, 105, 5, symbol=2), new(3, BUY, 100, 1, account=2))
    out = m.send(dict(kind=CommandType.KILL_SWITCH, account=1))
    assert levels_of(out) == [(BUY, 100, 1, 1), (SELL, 105, 0, 0)]
    assert [x.symbol for x in of(out, Depth)] == [1, 2]
    m.check()


def test_halt_and_resume_are_status_messages():
    m = Market()
    out = m.send(dict(kind=CommandType.HALT, symbol=1))
    assert out == [Status(0, 1, 1, 1, True)]
    assert m.books[1].halted
    assert m.send(new(1, BUY, 100, 5)) == []  # rejected while halted
    assert m.send(dict(kind=CommandType.RESUME, symbol=1)) == [Status(0, 1, 2, 3, False)]
    assert m.builder.snapshot(1).halted is False


def test_a_level_leaving_the_top_n_is_removed_and_the_next_one_moves_up():
    m = Market(levels=2)
    m.send(new(1, BUY, 100, 1), new(2, BUY, 99, 2), new(3, BUY, 98, 3))
    assert m.books[1].depth()[0] == [(100, 1, 1), (99, 2, 1)]
    out = m.send(cancel(1))  # 98 moves up into the top 2
    assert sorted(levels_of(out)) == [(BUY, 98, 3, 1), (BUY, 100, 0, 0)]
    out = m.send(new(4, BUY, 101, 4))  # a better level pushes 98 out of the top 2
    assert sorted(levels_of(out)) == [(BUY, 98, 0, 0), (BUY, 101, 4, 1)]
    assert m.send(new(5, BUY, 50, 1)) == []  # below the top 2: nothing to send
    assert m.builder.seq(1) == 6  # Depth and BBO of each of the three batches above
    m.check()


def test_sequence_numbers_are_per_symbol_and_step_by_one():
    m = Market(specs=(SymbolSpec(1), SymbolSpec(2)))
    m.send(new(1, BUY, 100, 5), new(2, SELL, 101, 5, symbol=2), new(3, SELL, 100, 2, account=2))
    m.send(new(4, BUY, 101, 9, symbol=2, account=2), cancel(1))
    for symbol in (1, 2):
        seqs = [x.seq for x in m.sent if x.symbol == symbol]
        assert seqs == list(range(1, len(seqs) + 1))
        assert m.builder.seq(symbol) == len(seqs)
    m.check()


def test_each_symbols_messages_carry_the_seq_of_its_last_event_in_the_batch():
    m = Market(specs=(SymbolSpec(1), SymbolSpec(2)))
    # commands 1..3: symbol 1's last event is command 3's, symbol 2's command 2's
    out = m.send(
        new(1, BUY, 100, 5), new(2, SELL, 101, 5, symbol=2), new(3, SELL, 100, 2, account=2)
    )
    assert {(x.symbol, x.cmd_seq) for x in out} == {(1, 3), (2, 2)}
    out = m.send(cancel(1))  # one symbol: its messages carry the batch's last seq
    assert {(x.symbol, x.cmd_seq) for x in out} == {(1, 4)}
    m.check()


def events(*rows: tuple) -> np.ndarray:
    """Hand-made events: (seq, kind, order id, side, price, qty) of symbol 1."""
    out = np.zeros(len(rows), dtype=EVENT_DTYPE)
    for record, (seq, kind, oid, side, price, qty) in zip(out, rows, strict=True):
        record["seq"], record["kind"], record["order_id"] = seq, kind, oid
        record["side"], record["price"], record["qty"], record["symbol"] = side, price, qty, 1
    return out


def test_events_about_orders_it_never_saw_are_counted_and_a_contradiction_raises():
    builder = DepthBuilder()
    assert builder.process(events((1, EventType.CANCELLED, 9, BUY, 100, 5))) == []
    assert builder.process(events((2, EventType.REPLACED, 9, BUY, 100, 5))) == []
    assert builder.unknown_orders == 2
    builder.process(events((3, EventType.ACCEPTED, 1, BUY, 100, 5)))
    builder.process(events((4, EventType.ACCEPTED, 2, BUY, 100, 3)))
    builder.process(events((5, EventType.CANCELLED, 1, BUY, 100, 8)))  # more than order 1 had
    with pytest.raises(InconsistentEvents, match="price 100"):
        builder.process(events((6, EventType.CANCELLED, 2, BUY, 100, 3)))


# ---------------------------------------------------------------- LocalBook
def depth_message(seq, price=100, qty=5, epoch=0):
    return Depth(epoch, 1, seq, seq, (LevelUpdate(BUY, price, qty, 1),))


def test_local_book_needs_a_snapshot_first_and_stops_at_a_gap():
    book = LocalBook(1)
    assert book.apply(depth_message(1)) is Applied.UNSYNCED
    assert book.depth() == ([], [])
    snap = Snapshot(0, 1, 3, 7, 10, (), (), False)
    assert book.apply(snap) is Applied.APPLIED
    assert book.apply(depth_message(2)) is Applied.STALE  # contained in the snapshot
    assert book.apply(depth_message(3)) is Applied.STALE
    assert book.apply(depth_message(4, price=100)) is Applied.APPLIED
    assert book.apply(depth_message(6, price=99)) is Applied.GAP  # 5 is missing
    assert book.needs_snapshot and book.gaps == 1
    assert book.apply(depth_message(7, price=98)) is Applied.UNSYNCED
    assert book.depth() == ([(100, 5, 1)], [])  # nothing past the gap was applied
    assert book.apply(Snapshot(0, 1, 3, 7, 10, (), (), False)) is Applied.APPLIED
    assert book.apply(depth_message(4, price=97)) is Applied.APPLIED
    assert book.depth() == ([(97, 5, 1)], [])


def test_local_book_ignores_an_old_snapshot_and_takes_a_newer_one():
    book = LocalBook(1)
    book.apply(Snapshot(0, 1, 5, 0, 10, (), (), False))
    assert book.apply(Snapshot(0, 1, 4, 0, 10, (), (), True)) is Applied.STALE
    assert book.apply(Snapshot(0, 1, 5, 0, 10, (), (), True)) is Applied.STALE
    assert not book.halted
    assert book.apply(Snapshot(0, 1, 9, 0, 10, (), (), True)) is Applied.APPLIED
    assert book.halted and book.seq == 9


def test_a_new_publisher_epoch_needs_a_snapshot_of_that_epoch():
    book = LocalBook(1)
    book.apply(Snapshot(0, 1, 5, 0, 10, (), (), False))
    assert book.apply(depth_message(1, epoch=1)) is Applied.UNSYNCED  # restarted publisher
    assert book.needs_snapshot
    assert book.apply(Snapshot(1, 1, 1, 0, 10, (), (), False)) is Applied.APPLIED
    assert book.apply(depth_message(2, epoch=1)) is Applied.APPLIED


def test_local_book_refuses_another_symbols_message():
    with pytest.raises(ValueError, match="symbol 1"):
        LocalBook(2).apply(depth_message(1))


# ---------------------------------------------------------------- wire and topics
def test_every_message_survives_msgpack_and_json():
    snap = Snapshot(3, 1, 9, 40, 2, (), (), False)
    messages = [
        depth_message(1),
        Trades(0, 1, 2, 3, (TradeTick(101, 4, SELL, 12345, 3),)),
        BBO(0, 1, 3, 3, 100, 5, 101, 6),
        Status(0, 1, 4, 5, True),
        snap,
    ]
    for message in messages:
        assert decode(encode(message)) == message
        assert decode_json(encode_json(message)) == message
    assert all(isinstance(m, UPDATES) for m in messages[:4])
    assert len(encode(depth_message(1))) < 30  # an array, not a map
    with pytest.raises(msgspec.ValidationError):
        decode(msgspec.msgpack.encode(["depth", 0, 1]))


def test_topics_match_by_prefix_only_their_own_symbol():
    assert topic(1) == b"md.1."
    assert topic("BTC-USD") == b"md.BTC-USD."
    assert not topic(12).startswith(topic(1))
    assert all(topic(s).startswith(TOPIC_PREFIX) for s in (0, 65535, "X"))
    for bad in (-1, 65536, "", "A.B", "A B", 1.0, True):
        with pytest.raises((ValueError, TypeError)):
            topic(bad)


# ---------------------------------------------------------------- against the engine
def assert_books_follow(
    cmds, cuts, levels, late_at, drop_at, emit_book_top=True, order_capacity=1 << 12
):
    """From the start, a late joiner, and a book that lost a message all hold the engine's
    depth after every batch (the last once a snapshot repaired it)."""
    engine = MatchingEngine(SPECS, emit_book_top=emit_book_top)
    builder = DepthBuilder(levels, order_capacity=order_capacity)
    symbols = [s.symbol for s in SPECS]
    first = {s: LocalBook(s) for s in symbols}
    late = {s: LocalBook(s) for s in symbols}
    lossy = {s: LocalBook(s) for s in symbols}
    for s in symbols:  # these two subscribe before anything happens
        first[s].apply(builder.snapshot(s))
        lossy[s].apply(builder.snapshot(s))
    bounds = sorted({0, len(cmds), *[c % (len(cmds) + 1) for c in cuts]})
    for i, (a, b) in enumerate(itertools.pairwise(bounds)):
        messages = builder.process(engine.process(cmds[a:b]))
        for n, message in enumerate(messages):
            wire = decode(encode(message))
            assert first[message.symbol].apply(wire) is Applied.APPLIED
            if i >= late_at:
                late[message.symbol].apply(wire)
            if i != drop_at or n > 0:  # the first message of batch drop_at is lost
                lossy[message.symbol].apply(wire)
        if i == drop_at and messages:  # the loss shows at the symbol's next message, if any
            lost = messages[0].symbol
            seen = any(m.symbol == lost for m in messages[1:])
            assert (lossy[lost].needs_snapshot, lossy[lost].gaps) == (seen, int(seen))
        for s in symbols:
            want = engine_depth(engine, s, levels)
            assert first[s].depth() == want
            if i == late_at:  # joins now: a snapshot, then the updates that follow
                assert late[s].apply(decode(encode(builder.snapshot(s)))) is Applied.APPLIED
            if i >= late_at:
                assert late[s].depth() == want
            if lossy[s].needs_snapshot:  # the loss was seen: the next snapshot repairs it
                assert lossy[s].apply(builder.snapshot(s)) is Applied.APPLIED
            elif lossy[s].seq < builder.seq(s):  # the lost message was the symbol's last so
                # far: nothing showed the loss yet, a snapshot newer than the book repairs it
                assert lossy[s].apply(builder.snapshot(s)) is Applied.APPLIED
            assert lossy[s].depth() == want
            assert first[s].seq == late[s].seq == builder.seq(s) or i < late_at


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 400),
    cuts=st.lists(st.integers(0, 400), max_size=30),
    levels=st.sampled_from([1, 2, 3, 5, 1000]),
    late_at=st.integers(0, 20),
    drop_at=st.integers(0, 20),
    emit_book_top=st.booleans(),
    order_capacity=st.sampled_from([16, 1 << 12]),
)
def test_local_books_hold_the_engines_depth_after_random_flows(
    seed, n, cuts, levels, late_at, drop_at, emit_book_top, order_capacity
):
    cmds = to_commands(random_stream(seed, n, odd_rate=0.05))
    assert_books_follow(cmds, cuts, levels, late_at, drop_at, emit_book_top, order_capacity)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 400),
    cuts=st.lists(st.integers(0, 400), max_size=30),
    levels=st.sampled_from([1, 3, 1000]),
)
def test_small_batches_take_the_python_path_to_the_same_messages(seed, n, cuts, levels):
    """Small batches are netted and scanned for trades in Python, large ones with numpy
    (``SMALL_DELTAS``, ``SMALL_EVENTS``): forced one way or the other for every batch, the
    same events make the same messages."""
    import stages.marketdata.builder as builder_module

    cmds = to_commands(random_stream(seed, n, odd_rate=0.05))
    engine = MatchingEngine(SPECS, emit_book_top=True)
    python_way, numpy_way = DepthBuilder(levels), DepthBuilder(levels)
    bounds = sorted({0, len(cmds), *[c % (len(cmds) + 1) for c in cuts]})
    for a, b in itertools.pairwise(bounds):
        events = engine.process(cmds[a:b])
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(builder_module, "SMALL_DELTAS", 10**9)
            patch.setattr(builder_module, "SMALL_EVENTS", 10**9)
            small = python_way.process(events)
            patch.setattr(builder_module, "SMALL_DELTAS", 0)
            patch.setattr(builder_module, "SMALL_EVENTS", 0)
            assert numpy_way.process(events) == small


@pytest.mark.slow
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 3000),
    cuts=st.lists(st.integers(0, 3000), max_size=200),
    levels=st.integers(1, 12),
    late_at=st.integers(0, 100),
    drop_at=st.integers(0, 100),
)
def test_local_books_hold_the_engines_depth_after_long_random_flows(
    seed, n, cuts, levels, late_at, drop_at
):
    cmds = to_commands(random_stream(seed, n, odd_rate=0.05))
    assert_books_follow(cmds, cuts, levels, late_at, drop_at)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    cuts=st.lists(st.integers(0, 4000), max_size=40),
    levels=st.sampled_from([1, 4, 1000]),
)
def test_event_batches_cut_inside_a_command_still_end_at_the_engines_depth(seed, cuts, levels):
    """A batch that ends inside a command rests its aggressor early; the command's later
    events take it off again, so the books agree again at the end."""
    cmds = to_commands(random_stream(seed, 300, odd_rate=0.05))
    engine = MatchingEngine(SPECS)
    events = engine.process(cmds).copy()
    builder = DepthBuilder(levels)
    books = {s.symbol: LocalBook(s.symbol) for s in SPECS}
    for symbol, book in books.items():
        book.apply(builder.snapshot(symbol))
    bounds = sorted({0, len(events), *[c % (len(events) + 1) for c in cuts]})
    for a, b in itertools.pairwise(bounds):
        for message in builder.process(events[a:b]):
            assert books[message.symbol].apply(message) is Applied.APPLIED
    for symbol, book in books.items():
        assert book.depth() == engine_depth(engine, symbol, levels)
    assert builder.unknown_orders == 0


def test_the_order_map_grows_and_many_orders_opened_by_one_seq_still_rest():
    """A builder that starts with room for 16 orders follows thousands; events that open
    more orders in one seq than the pending list holds (matching never does) rest them."""
    engine = MatchingEngine([SymbolSpec(1)])
    cmds = np.zeros(3000, dtype=COMMAND_DTYPE)
    cmds["seq"] = np.arange(1, 3001)
    cmds["kind"], cmds["order_id"], cmds["account"], cmds["symbol"] = 1, cmds["seq"], 1, 1
    cmds["side"] = cmds["seq"] % 2
    cmds["price"] = np.where(cmds["side"] == 0, 1000 - cmds["seq"] % 97, 2000 + cmds["seq"] % 89)
    cmds["qty"] = 1 + cmds["seq"] % 7
    events = engine.process(cmds).copy()
    builder = DepthBuilder(levels=1000, order_capacity=16)
    books = {1: LocalBook(1)}
    books[1].apply(builder.snapshot(1))
    for a in range(0, len(events), 700):
        for message in builder.process(events[a : a + 700]):
            books[1].apply(message)
    assert books[1].depth() == engine_depth(engine, 1, 1000)
    one_seq = events.copy()
    one_seq["seq"] = 1  # every order opened by the same seq: more than PENDING_MAX at once
    other = DepthBuilder(levels=1000, order_capacity=16)
    other.process(one_seq)
    bids = [(x.price, x.qty, x.count) for x in other.snapshot(1).bids]
    assert bids == engine_depth(engine, 1, 1000)[0]


def test_a_builder_seeded_from_resting_orders_follows_from_there():
    cmds = to_commands(random_stream(11, 600, odd_rate=0.05))
    engine = MatchingEngine(SPECS)
    engine.process(cmds[:300])
    builder = DepthBuilder.from_resting(engine.resting_orders(), levels=4, epoch=2)
    books = {s.symbol: LocalBook(s.symbol) for s in SPECS}
    for symbol, book in books.items():
        assert book.apply(builder.snapshot(symbol)) is Applied.APPLIED
        assert book.depth() == engine_depth(engine, symbol, 4)
    for a in range(300, 600, 37):
        for message in builder.process(engine.process(cmds[a : a + 37])):
            assert books[message.symbol].apply(message) is Applied.APPLIED
        for symbol, book in books.items():
            assert book.depth() == engine_depth(engine, symbol, 4)
    assert builder.unknown_orders == 0


def test_the_same_events_give_byte_identical_messages():
    cmds = to_commands(random_stream(5, 800, odd_rate=0.05))
    cmds["ts_ingest"] = np.arange(len(cmds)) * 1000 + 17
    events = MatchingEngine(SPECS).process(cmds).copy()
    runs = []
    for _ in range(2):
        builder = DepthBuilder(5)
        wire = [
            encode(m)
            for a in range(0, len(events), 64)
            for m in builder.process(events[a : a + 64])
        ]
        wire += [encode(builder.snapshot(s.symbol)) for s in SPECS]
        runs.append(b"".join(wire))
    assert runs[0] == runs[1]
    assert len(runs[0]) > 1000


def test_a_lost_message_is_a_gap_and_a_snapshot_repairs_the_book():
    m = Market()
    m.send(new(1, BUY, 100, 5))
    lossy = LocalBook(1)
    lossy.apply(m.builder.snapshot(1))
    first = m.send(new(2, BUY, 99, 5))  # lost on the way to the lossy book
    second = m.send(new(3, SELL, 103, 5), cancel(1))
    assert [lossy.apply(x) for x in second] == [Applied.GAP, Applied.UNSYNCED]
    assert lossy.depth() == ([(100, 5, 1)], [])  # as it was before the gap
    assert first  # the message that was lost
    assert lossy.apply(m.builder.snapshot(1)) is Applied.APPLIED
    assert lossy.depth() == m.books[1].depth() == engine_depth(m.engine, 1, 10)
    m.send(new(4, SELL, 102, 1))
    for message in m.sent[-2:]:
        assert lossy.apply(message) is Applied.APPLIED
    assert lossy.depth() == engine_depth(m.engine, 1, 10)


@given(
    st.lists(
        st.tuples(
            st.integers(0, 5), st.integers(90, 110), st.integers(-50, 50), st.integers(-3, 3)
        ),
        min_size=1,
        max_size=80,
    )
)
@settings(max_examples=200, deadline=None)
def test_netting_levels_in_python_and_with_numpy_agree(rows):
    """``net_levels`` nets a few rows in Python and many with numpy: the same levels, the
    same order, the same net changes, and levels with no net change left out either way."""
    from stages.marketdata.builder import _net_numpy, _net_small

    deltas = np.array(rows, dtype=np.int64)
    netted = _net_small(deltas.tolist())
    assert netted == _net_numpy(deltas)
    totals: dict[tuple[int, int], list[int]] = {}
    for s, p, q, c in rows:  # the obvious reference
        level = totals.setdefault((s, p), [0, 0])
        level[0] += q
        level[1] += c
    assert netted == [(s, p, q, c) for (s, p), (q, c) in sorted(totals.items()) if q or c]
