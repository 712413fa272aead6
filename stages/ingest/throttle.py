"""Throttling at ingest: per-client token buckets and a per-symbol message-rate guard.

Venues protect their books and their users from runaway clients with API rate limits. Each
account has two token buckets (rate per second, burst): one for new orders, one for cancels,
reduces and replaces, refused with ``THROTTLED`` and ``THROTTLED_CANCEL``; each symbol has a
message-rate guard ("order book throttling") over all of those messages, refused with
``SYMBOL_RATE``. A message consumes a token of its client bucket and of its symbol's only
when both have one, so a message refused by one limit does not count against the other.

Buckets refill from the commands' ``ts_ingest`` (the sequenced timestamp), never from the
wall clock, and count in integer nano-tokens: replaying a journal reproduces every decision
bit for bit. A timestamp earlier than the last one seen refills nothing.
"""

from __future__ import annotations

import hashlib

import msgspec
import numpy as np
from numba import njit

from stages.kernel_codes import (
    CMD_CANCEL,
    CMD_NEW,
    CMD_REDUCE,
    CMD_REPLACE,
    R_SYMBOL_RATE,
    R_THROTTLED,
    R_THROTTLED_CANCEL,
)
from stages.records import COMMAND_DTYPE

NANO = 1_000_000_000  # nano-tokens per token; one token refills per (1e9 / rate) ns
MAX_RATE = 10**9
MAX_BURST = 10**9
_N_SYMBOLS = 1 << 16


class BucketConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A token bucket: ``rate`` tokens per second, holding at most ``burst``; rate 0 = off."""

    rate: int = 0
    burst: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.rate <= MAX_RATE:
            raise ValueError(f"BucketConfig.rate = {self.rate} is invalid: expected 0..{MAX_RATE}")
        if self.rate and not 1 <= self.burst <= MAX_BURST:
            raise ValueError(
                f"BucketConfig.burst = {self.burst} is invalid: expected 1..{MAX_BURST} "
                f"when rate is set (a bucket must hold at least one token)"
            )


class ThrottleConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Per-account order and cancel buckets and the per-symbol guard; all off by default."""

    orders: BucketConfig = msgspec.field(default_factory=BucketConfig)
    cancels: BucketConfig = msgspec.field(default_factory=BucketConfig)
    symbol: BucketConfig = msgspec.field(default_factory=BucketConfig)


@njit(cache=True, inline="always", _nrt=False)
def _refill(tokens, last, ts, rate, cap) -> int:
    """A bucket's tokens at time ``ts`` (not stored). Integer arithmetic only."""
    dt = ts - last
    if dt <= 0:
        return tokens
    if dt > (cap - tokens) // rate + 1:  # full anyway; avoids overflowing dt * rate
        return cap
    return min(cap, tokens + dt * rate)


@njit(cache=True, _nrt=False)
def _throttle(
    kind, account, symbol, ts, reason,
    acc_tokens, acc_last, sym_tokens, sym_last, rates, caps,
) -> int:  # fmt: skip
    refused = 0
    for i in range(kind.shape[0]):
        if reason[i] != 0:
            continue
        k = kind[i]
        if k == CMD_NEW:
            b = 0
        elif k in (CMD_CANCEL, CMD_REDUCE, CMD_REPLACE):
            b = 1
        else:
            continue
        a = account[i]
        if a >= acc_tokens.shape[0]:
            continue  # validate refuses it
        t = ts[i]
        have = np.int64(0)
        shave = np.int64(0)
        client_ok = True
        if rates[b] > 0:
            have = _refill(acc_tokens[a, b], acc_last[a, b], t, rates[b], caps[b])
            client_ok = have >= NANO
        sym_ok = True
        s = symbol[i]
        if rates[2] > 0:
            shave = _refill(sym_tokens[s], sym_last[s], t, rates[2], caps[2])
            sym_ok = shave >= NANO
        if not client_ok:
            reason[i] = R_THROTTLED if b == 0 else R_THROTTLED_CANCEL
            refused += 1
            continue
        if not sym_ok:
            reason[i] = R_SYMBOL_RATE
            refused += 1
            continue
        if rates[b] > 0:
            acc_tokens[a, b] = have - NANO
            acc_last[a, b] = max(acc_last[a, b], t)
        if rates[2] > 0:
            sym_tokens[s] = shave - NANO
            sym_last[s] = max(sym_last[s], t)
    return refused


class Throttle:
    """Token buckets per account (orders, cancels) and per symbol, driven by ``ts_ingest``."""

    def __init__(self, config: ThrottleConfig | None = None, max_accounts: int = 1024) -> None:
        self.config = config = config if config is not None else ThrottleConfig()
        self.max_accounts = max_accounts
        buckets = (config.orders, config.cancels, config.symbol)
        # rate tokens/s = rate nano-tokens per ns
        self.rates = np.array([b.rate for b in buckets], np.int64)
        self.caps = np.array([b.burst * NANO for b in buckets], np.int64)
        self.acc_tokens = np.empty((max_accounts, 2), np.int64)
        self.acc_tokens[:] = self.caps[:2]
        self.acc_last = np.zeros((max_accounts, 2), np.int64)
        self.sym_tokens = np.full(_N_SYMBOLS, self.caps[2], np.int64)
        self.sym_last = np.zeros(_N_SYMBOLS, np.int64)
        self._enabled = bool(self.rates.any())  # fixed by the config; checked per batch

    @property
    def enabled(self) -> bool:
        """Whether any bucket is on (``check`` is a no-op otherwise)."""
        return self._enabled

    def check(self, commands: np.ndarray) -> int:
        """Refuse (set ``reason`` of) commands over their limits, in place; returns how many.

        Hot: one compiled pass in sequence order, no allocation per record.
        """
        if commands.dtype is not COMMAND_DTYPE and commands.dtype != COMMAND_DTYPE:
            raise TypeError(f"commands must be a COMMAND_DTYPE array, got dtype {commands.dtype}")
        if not self._enabled:
            return 0
        c = commands
        return int(
            _throttle(
                c["kind"], c["account"], c["symbol"], c["ts_ingest"], c["reason"],
                self.acc_tokens, self.acc_last, self.sym_tokens, self.sym_last, self.rates,
                self.caps,
            )
        )  # fmt: skip

    _STATE = ("acc_tokens", "acc_last", "sym_tokens", "sym_last")

    def state_hash(self) -> str:
        h = hashlib.blake2b(digest_size=16)
        for name in self._STATE:
            h.update(getattr(self, name).tobytes())
        return h.hexdigest()

    def state(self) -> dict[str, bytes]:
        """Every mutable array as bytes (for a snapshot)."""
        return {name: getattr(self, name).tobytes() for name in self._STATE}

    def load_state(self, state: dict[str, bytes]) -> None:
        """Restore what ``state()`` returned (same config and max_accounts)."""
        for name in self._STATE:
            current = getattr(self, name)
            current[...] = np.frombuffer(state[name], np.int64).reshape(current.shape)
