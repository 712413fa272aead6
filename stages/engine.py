"""Engine: the whole trading core in one process — ingest checks, risk, matching, settlement.

It is how tests, backtests and replays drive tradepipe without processes, and the reference
the multiprocess pipeline is checked against: ``process(commands) -> events`` runs a batch
through validation and throttling (ingest), the risk pre-trade pass, the matching engine and
the risk post-trade pass, exactly as the stages do in sequence. ``state_hash()``,
``snapshot()`` and ``restore()`` cover all of it (throttle buckets, risk, books).

Determinism: the outcome is a function of the sequenced command stream alone, however the
caller cuts it into batches. Settlement lags pre-trade checks (in the pipeline risk runs
ahead of matching's answers), so the lag is fixed by sequence numbers, not by batches:
commands fall into *settlement windows* of ``settle_every`` consecutive seqs, every
command of a window is checked before any fill of that window settles, and a window's
events settle when its last seq has been matched (or, after a gap in seqs, before the
first command of a later window). Funds a fill frees are usable from the next window on.
Events of an open window wait in the engine and are part of its snapshot and, without
their latency stamps, of its hash: state is the commands' content, never when they were
stamped.
Holds stay exact all the same: a REPLACE sets its order's open quantity outright, so while
its order may have fills not yet settled, risk holds the replace in full and returns the
excess when matching confirms it (see ``stages/risk/pretrade.py``).
"""

from __future__ import annotations

import hashlib

import msgspec
import numpy as np

from ringbuffer.records import clone_records, concat_records
from stages.ingest.throttle import Throttle, ThrottleConfig
from stages.ingest.validate import validate_words
from stages.matching.engine import MatchingEngine
from stages.matching.symbols import MAX_ORDER_CAPACITY, SymbolSpec
from stages.record_words import C_SEQ, command_words, event_words
from stages.records import EVENT_DTYPE
from stages.risk.config import RiskConfig
from stages.risk.engine import RiskEngine
from stages.snapshot_body import decode_body

_SNAPSHOT_FORMAT = "tradepipe.engine"
_SNAPSHOT_VERSION = 2
_SEQ = C_SEQ[0]  # the word of a command's seq (a whole word), read here without a kernel
# what an event carries for latency measurement: kept in the snapshot, never in the hash
_EVENT_STAMPS = ("ts_ingest", "dt_match")


class EngineConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One config for the in-process chain (the CLI decodes it from TOML).

    The embedded defaults describe a BTC-USD venue (assets 0 = USD, 1 = BTC, symbol 1), 1024
    accounts, no fees, no limits and no throttling; every part can be overridden.
    """

    risk: RiskConfig = msgspec.field(default_factory=RiskConfig)
    throttle: ThrottleConfig = msgspec.field(default_factory=ThrottleConfig)
    matching_order_capacity: int = 1 << 16
    emit_book_top: bool = True  # risk prices market orders from BOOK_TOP: keep it on
    settle_every: int = 1024  # the settlement window, in seqs (see the module docstring)

    def __post_init__(self) -> None:
        if self.settle_every < 1:
            raise ValueError(
                f"EngineConfig.settle_every = {self.settle_every} is invalid: expected >= 1"
            )
        limits = [self.risk.default_limits, *(a.limits for a in self.risk.accounts)]
        if not self.emit_book_top and any(lim.max_order_notional > 0 for lim in limits):
            raise ValueError(
                "EngineConfig.emit_book_top = False is invalid with a max_order_notional "
                "limit: risk values sells at the best bid matching reports in BOOK_TOP events "
                "(without them a resting bid would go unseen); expected True"
            )
        if not 1 <= self.matching_order_capacity <= MAX_ORDER_CAPACITY:
            raise ValueError(
                f"EngineConfig.matching_order_capacity = {self.matching_order_capacity} is "
                f"invalid: expected 1..{MAX_ORDER_CAPACITY} (2**28, the most orders the "
                "matching engine holds)"
            )

    def symbol_specs(self) -> list[SymbolSpec]:
        """The matching engine's rules for every configured instrument."""
        return [
            SymbolSpec(
                symbol=i.symbol, tick_size=i.tick_size, lot_size=i.lot_size, min_qty=i.min_qty,
                max_qty=i.max_qty, price_band_low=i.price_band_low,
                price_band_high=i.price_band_high,
            )
            for i in self.risk.instruments
        ]  # fmt: skip


class _Snapshot(msgspec.Struct, frozen=True):
    format: str
    version: int
    config: EngineConfig
    last_seq: int
    throttle: dict[str, bytes]
    risk: bytes
    matching: bytes
    unsettled: bytes  # events of the open settlement window, not yet settled


class Engine:
    """ingest checks -> risk pre-trade -> matching -> risk post-trade, over batches."""

    def __init__(self, config: EngineConfig | None = None) -> None:
        self.config = config = config if config is not None else EngineConfig()
        self.throttle = Throttle(config.throttle, config.risk.max_accounts)
        self.risk = RiskEngine(config.risk)
        self.matching = MatchingEngine(
            config.symbol_specs(),
            order_capacity=config.matching_order_capacity,
            emit_book_top=config.emit_book_top,
        )
        self.last_seq = 0
        self._unsettled: list[np.ndarray] = []  # event batches of the open window
        self._cache_config()

    def _cache_config(self) -> None:
        """Copy the settings the per-window path reads into plain attributes."""
        self._settle_every = self.config.settle_every
        self._max_accounts = self.config.risk.max_accounts
        self._throttled = self.throttle.enabled
        self._events_done = 0  # events of the current batch's earlier windows

    @property
    def unsettled_events(self) -> int:
        """Events matched but not settled yet (their window is still open)."""
        return sum(len(batch) for batch in self._unsettled)

    def process(self, commands: np.ndarray) -> np.ndarray:
        """Run a sequenced command batch through the chain; returns its events.

        ``commands`` is checked in place like in the pipeline: refused commands get their
        ``reason``, market buys their protection ``price``. Their ``seq`` must increase from
        one command to the next, across batches (risk ties matching's answers to the command
        by seq). The events are a view valid until the next call.

        Hot: a few Python steps per batch and per settlement window, none per command. The
        batch is viewed as int64 words once and its windows are cut by slicing that view.
        """
        words = command_words(commands)  # refuses all but a 1-d, contiguous COMMAND_DTYPE batch
        n = len(words)
        if n == 0:
            return self.matching.process(commands)
        _, bad = validate_words(words, self._max_accounts, self.last_seq, True)
        if bad >= 0:
            prev = self.last_seq if bad == 0 else int(words[bad - 1, _SEQ])
            raise ValueError(
                f"command seq {int(words[bad, _SEQ])} (batch index {bad}) does not "
                f"increase: expected > {prev}; was this batch already applied?"
            )
        every = self._settle_every
        first = int(words[0, _SEQ])
        last = int(words[n - 1, _SEQ])
        if (first - 1) // every == (last - 1) // every:
            return self._process_window(commands, words, first, last, append=False)
        # cut at the last seq of each window; seqs increase, so a window's last seq is
        # usually at a known offset (contiguous seqs) and else found by bisection
        events = None
        start = 0
        while start < n:
            lo = int(words[start, _SEQ])
            end_seq = ((lo - 1) // every + 1) * every  # the last seq of lo's window
            if end_seq >= last:
                stop = n
            else:
                guess = start + end_seq - lo
                if guess < n and words[guess, _SEQ] == end_seq:
                    stop = guess + 1
                else:
                    stop = int(np.searchsorted(words[start:, _SEQ], end_seq, "right")) + start
            hi = int(words[stop - 1, _SEQ])
            events = self._process_window(
                commands[start:stop], words[start:stop], lo, hi, append=events is not None
            )
            start = stop
        return events

    def _process_window(
        self, commands: np.ndarray, words: np.ndarray, first: int, last: int, append: bool
    ) -> np.ndarray:
        """Check, match and (when the window closes) settle commands of one window.

        ``words`` is ``commands`` as int64 words, ``first`` / ``last`` their first and last
        seq. With ``append`` this window's events follow, in matching's buffer, those of the
        batch's earlier windows (no copies) and the whole is returned.
        """
        every = self._settle_every
        if self._unsettled and (first - 1) // every != (self.last_seq - 1) // every:
            self._settle()  # a gap in seqs skipped the old window's last seq
        if self._throttled:
            self.throttle.check(commands)
        self.risk.pre_trade_words(words)
        done = self._events_done if append else 0
        batch_events = self.matching.process(commands, append=append)
        self._events_done = len(batch_events)
        events = batch_events[done:]
        self.last_seq = last
        if last % every == 0:  # the window's last seq: it closes
            self._settle(events)
        else:
            self._unsettled.append(clone_records(events))
        return batch_events

    def _settle(self, closing: np.ndarray | None = None) -> None:
        for events in self._unsettled:
            self.risk.post_trade_words(event_words(events))
        self._unsettled.clear()
        if closing is not None:
            self.risk.post_trade_words(event_words(closing))

    # --- persistence -----------------------------------------------------------------------

    def state_hash(self) -> str:
        """Digest of throttle, risk and book state; equal hashes mean identical state.

        A function of the sequenced commands' content: the events of the open window are
        hashed without their stamps (``_EVENT_STAMPS``), which settlement never reads, so
        the same stream stamped at other times hashes the same. (``ts_ingest`` does reach
        the throttle buckets when throttling is on: there it is the throttles' clock.)
        """
        h = hashlib.blake2b(digest_size=32)
        h.update(f"{_SNAPSHOT_FORMAT}/{_SNAPSHOT_VERSION}/{self.last_seq}".encode())
        for part in (self.throttle.state_hash(), self.risk.state_hash()):
            h.update(part.encode())
        h.update(self.matching.state_hash().encode())
        unsettled = self.open_window_events()  # a copy: the engine's events keep their stamps
        for stamp in _EVENT_STAMPS:
            unsettled[stamp] = 0
        h.update(unsettled.tobytes())
        return h.hexdigest()

    def open_window_events(self) -> np.ndarray:
        """A copy of the events of the open settlement window (matched, not settled)."""
        if not self._unsettled:
            return np.zeros(0, dtype=EVENT_DTYPE)
        return concat_records(self._unsettled)

    def snapshot(self) -> bytes:
        """Everything needed to rebuild this engine, as bytes (msgpack)."""
        return msgspec.msgpack.encode(
            _Snapshot(
                format=_SNAPSHOT_FORMAT,
                version=_SNAPSHOT_VERSION,
                config=self.config,
                last_seq=self.last_seq,
                throttle=self.throttle.state(),
                risk=self.risk.snapshot(),
                matching=self.matching.snapshot(),
                unsettled=self.open_window_events().tobytes(),
            )
        )

    @classmethod
    def restore(cls, data: bytes) -> Engine:
        """The engine ``snapshot()`` was taken of (same hash, same future)."""
        snap = decode_body(data, _Snapshot, _SNAPSHOT_FORMAT, _SNAPSHOT_VERSION, "an engine")
        engine = cls.__new__(cls)
        engine.config = snap.config
        engine.throttle = Throttle(snap.config.throttle, snap.config.risk.max_accounts)
        engine.throttle.load_state(snap.throttle)
        engine.risk = RiskEngine.restore(snap.risk)
        engine.matching = MatchingEngine.restore(snap.matching)
        engine.last_seq = snap.last_seq
        unsettled = clone_records(np.frombuffer(snap.unsettled, dtype=EVENT_DTYPE))
        engine._unsettled = [unsettled] if len(unsettled) else []
        engine._cache_config()
        return engine
