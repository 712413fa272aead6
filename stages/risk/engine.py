"""RiskEngine: the deterministic pre-trade / post-trade risk core over numpy batches.

Owns the preallocated state (balances, positions, per-account limits and flags, per-symbol
configuration and market state, the open-order table) and runs the compiled passes of
``pretrade.pre_trade`` (commands: reject or hold) and ``settlement.post_trade`` (events:
settle), over the word views of ``stages.record_words``.
It launches nothing and knows nothing of rings: the risk stage, the in-process ``Engine`` and
the tests all drive it the same way. ``snapshot()`` / ``restore()`` / ``state_hash()`` cover
every array, so replaying the same command batches from a snapshot rebuilds identical state.
"""

from __future__ import annotations

import hashlib

import msgspec
import numpy as np

from stages.record_words import command_words, event_words
from stages.risk import layout as L
from stages.risk.config import RiskConfig
from stages.risk.orders import hash_size_for, new_table, rehash
from stages.risk.pretrade import pre_trade
from stages.risk.settlement import post_trade

_STATE_ARRAYS = (
    "balances", "positions", "accounts", "symbols", "glob", "keys", "rows",
    "round_buy_max", "round_sell_min",
)  # fmt: skip
_SNAPSHOT_VERSION = 1


class _Snapshot(msgspec.Struct, frozen=True):
    version: int
    config: RiskConfig
    arrays: dict[str, bytes]


class RiskEngine:
    """Pre-trade checks and holds, post-trade settlement; see ``docs/risk.md``."""

    def __init__(self, config: RiskConfig | None = None) -> None:
        self.config = config = config if config is not None else RiskConfig()
        self.asset_ids = [a.asset for a in config.assets]
        self.symbol_ids = [i.symbol for i in config.instruments]
        self.asset_index = np.full(L_MAX_IDS, -1, np.int64)
        for x, asset in enumerate(self.asset_ids):
            self.asset_index[asset] = x
        self.sym_index = np.full(L_MAX_IDS, -1, np.int64)
        for s, sym in enumerate(self.symbol_ids):
            self.sym_index[sym] = s
        n_acc, n_assets, n_sym = config.max_accounts, len(self.asset_ids), len(self.symbol_ids)
        self.balances = np.zeros((n_acc, n_assets, 2), np.int64)
        self.positions = np.zeros((n_acc, max(n_sym, 1), L.POS_COLUMNS), np.int64)
        self.accounts = np.zeros((n_acc, L.ACC_COLUMNS), np.int64)
        self.symbols = np.zeros((max(n_sym, 1), L.SYM_COLUMNS), np.int64)
        self.glob = np.zeros(L.G_COLUMNS, np.int64)
        self.keys, self.rows = new_table(config.order_capacity)
        self.glob[L.G_MAX_ORDERS] = config.order_capacity
        self.glob[L.G_FREE_HEAD] = 0
        # how far orders pre-traded since all was last settled may reach, per symbol
        self.round_buy_max = np.zeros(max(n_sym, 1), np.int64)
        self.round_sell_min = np.full(max(n_sym, 1), L.UNBOUNDED_PRICE, np.int64)
        # each asset's total over every account: derived from balances (so neither hashed
        # nor saved), kept by deposits and withdrawals to bound every amount (pretrade.py)
        self.supply = np.zeros(max(n_assets, 1), np.int64)
        d = config.default_limits
        self.accounts[:, L.ACC_MAX_QTY] = d.max_order_qty
        self.accounts[:, L.ACC_MAX_NOTIONAL] = d.max_order_notional
        self.accounts[:, L.ACC_MAX_OPEN] = d.max_open_orders
        self.accounts[:, L.ACC_MAX_POSITION] = d.max_position
        for acc in config.accounts:
            self.set_limits(acc.account, acc.limits)
        for s, inst in enumerate(config.instruments):
            row = self.symbols[s]
            row[L.SYM_BASE] = self.asset_index[inst.base]
            row[L.SYM_QUOTE] = self.asset_index[inst.quote]
            row[L.SYM_BASE_PER_LOT] = inst.base_per_lot
            row[L.SYM_QUOTE_SCALE] = inst.quote_per_price_lot
            row[L.SYM_MAKER_BPS] = inst.maker_fee_bps
            row[L.SYM_TAKER_BPS] = inst.taker_fee_bps
            row[L.SYM_COLLAR_BPS] = inst.collar_bps
            row[L.SYM_REF_PRICE] = inst.reference_price
            row[L.SYM_MARKET_BAND_BPS] = inst.market_band_bps
            row[L.SYM_TICK] = inst.tick_size

    # --- the two passes -------------------------------------------------------------------

    def pre_trade(self, commands: np.ndarray) -> int:
        """Check ``commands`` (COMMAND_DTYPE batch) in place; returns how many were rejected.

        Sets ``reason`` of refused commands and ``price`` of market buys (their protection
        price); places holds and applies admin commands, in sequence. A replace is held in
        full while its order may have fills not yet settled (see ``pretrade.pre_trade``).
        """
        return self.pre_trade_words(command_words(commands))

    def pre_trade_words(self, words: np.ndarray) -> int:
        """``pre_trade`` of a batch already viewed as int64 words (``command_words``).

        Hot: the caller (the Engine, per settlement window) has checked the batch; nothing
        is checked here.
        """
        # every command could add an order: keep the hash at most half full
        size = hash_size_for(int(self.glob[L.G_OPEN_ORDERS]) + len(words), len(self.keys))
        if size != len(self.keys):
            grown = np.zeros((size, 2), np.int64)
            rehash(self.keys, grown)
            self.keys = grown
        return int(
            pre_trade(
                words, self.balances, self.positions, self.accounts, self.sym_index,
                self.asset_index, self.symbols, self.glob, self.keys, self.rows,
                self.round_buy_max, self.round_sell_min, self.supply,
            )
        )  # fmt: skip

    def post_trade(self, events: np.ndarray) -> int:
        """Settle ``events`` (EVENT_DTYPE batch) from matching; returns how many touched orders."""
        return self.post_trade_words(event_words(events))

    def post_trade_words(self, words: np.ndarray) -> int:
        """``post_trade`` of a batch already viewed as int64 words (``event_words``). Hot:
        nothing is checked here."""
        return int(
            post_trade(
                words, self.balances, self.positions, self.accounts, self.sym_index,
                self.symbols, self.glob, self.keys, self.rows, self.round_buy_max,
                self.round_sell_min,
            )
        )  # fmt: skip

    # --- admin outside the sequenced stream ---------------------------------------------

    def set_limits(self, account: int, limits) -> None:
        """Replace ``account``'s limits (a control-plane change, applied between batches)."""
        self._check_account(account)
        row = self.accounts[account]
        row[L.ACC_MAX_QTY] = limits.max_order_qty
        row[L.ACC_MAX_NOTIONAL] = limits.max_order_notional
        row[L.ACC_MAX_OPEN] = limits.max_open_orders
        row[L.ACC_MAX_POSITION] = limits.max_position

    # --- views -----------------------------------------------------------------------------

    def balance(self, account: int, asset: int) -> tuple[int, int]:
        """``(free, held)`` of ``account`` in ``asset`` (an asset id)."""
        self._check_account(account)
        x = self._asset(asset)
        return int(self.balances[account, x, L.FREE]), int(self.balances[account, x, L.HELD])

    def position(self, account: int, symbol: int) -> int:
        """Net filled position (lots) of ``account`` in ``symbol``."""
        self._check_account(account)
        return int(self.positions[account, self._symbol(symbol), L.POS_NET])

    def open_orders(self, account: int) -> int:
        self._check_account(account)
        return int(self.accounts[account, L.ACC_OPEN_ORDERS])

    def totals(self) -> dict[int, int]:
        """Asset id -> free + held summed over every account (the fee account included)."""
        sums = self.balances.sum(axis=(0, 2))
        return {asset: int(sums[x]) for x, asset in enumerate(self.asset_ids)}

    def order_hold(self, order_id: int) -> int | None:
        """What ``order_id`` holds now, or None when risk does not track it."""
        row = self.order_row(order_id)
        return None if row is None else int(self.rows[row, L.O_HELD])

    def order_row(self, order_id: int) -> int | None:
        """Pool row of ``order_id`` (see ``layout.O_*`` for its columns), or None."""
        hits = np.nonzero(self.keys[:, 0] == order_id)[0]
        return int(self.keys[hits[0], 1]) if len(hits) else None

    def open_order_ids(self) -> list[int]:
        """Ids of every order risk tracks, ascending."""
        return sorted(int(k) for k in self.keys[self.keys[:, 0] != 0, 0])

    # --- persistence -----------------------------------------------------------------------

    def state_hash(self) -> str:
        """A digest of the whole risk state; equal hashes mean identical state.

        Orders are hashed by id with their columns, not by where they sit in the hash or
        the pool, so the digest does not depend on table sizes.
        """
        h = hashlib.blake2b(digest_size=16)
        for name in _STATE_ARRAYS:
            if name not in ("keys", "rows", "glob"):
                h.update(np.ascontiguousarray(getattr(self, name)).tobytes())
        glob = self.glob.copy()
        glob[L.G_FREE_HEAD] = 0  # where the free rows start is placement, not state
        h.update(glob.tobytes())
        live = self.keys[self.keys[:, 0] != 0]
        live = live[np.argsort(live[:, 0], kind="stable")]
        orders = self.rows[live[:, 1]].copy()
        h.update(live[:, 0].tobytes())
        h.update(np.ascontiguousarray(orders).tobytes())
        return h.hexdigest()

    def snapshot(self) -> bytes:
        """Everything needed to rebuild this engine: its config and every state array."""
        arrays = {name: getattr(self, name).tobytes() for name in _STATE_ARRAYS}
        return msgspec.msgpack.encode(_Snapshot(_SNAPSHOT_VERSION, self.config, arrays))

    @classmethod
    def restore(cls, data: bytes) -> RiskEngine:
        """The engine a ``snapshot()`` was taken of."""
        snap = msgspec.msgpack.decode(data, type=_Snapshot)
        if snap.version != _SNAPSHOT_VERSION:
            raise ValueError(
                f"risk snapshot version {snap.version} is not supported: expected "
                f"{_SNAPSHOT_VERSION}"
            )
        engine = cls(snap.config)
        for name in _STATE_ARRAYS:
            current = getattr(engine, name)
            restored = np.frombuffer(snap.arrays[name], dtype=current.dtype)
            if name == "keys":  # the hash grows with use: take its size from the snapshot
                engine.keys = restored.reshape(-1, 2).copy()
            else:
                current[...] = restored.reshape(current.shape)
        engine.supply[: len(engine.asset_ids)] = engine.balances.sum(axis=(0, 2))
        return engine

    # --- helpers ---------------------------------------------------------------------------

    def _check_account(self, account: int) -> None:
        if not 0 <= account < self.config.max_accounts:
            raise ValueError(
                f"account {account} is unknown: expected 0..{self.config.max_accounts - 1}"
            )

    def _asset(self, asset: int) -> int:
        x = int(self.asset_index[asset]) if 0 <= asset < L_MAX_IDS else -1
        if x < 0:
            raise ValueError(f"asset {asset} is not configured: expected one of {self.asset_ids}")
        return x

    def _symbol(self, symbol: int) -> int:
        s = int(self.sym_index[symbol]) if 0 <= symbol < L_MAX_IDS else -1
        if s < 0:
            raise ValueError(
                f"symbol {symbol} is not configured: expected one of {self.symbol_ids}"
            )
        return s


L_MAX_IDS = 1 << 16
