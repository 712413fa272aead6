"""The compiled core of the matching engine: price-time books in preallocated arrays.

Everything here is ``numba.njit(cache=True)`` over the int64 arrays described in
``layout.py``: an order pool with a free stack, price levels with per-level FIFO links,
per book side a sorted array of level keys whose best level is the LAST element (so the
best price is found without scanning and the busy end near the touch is cheap to insert
into and pop), and an open-addressing hash table from order id to pool row (``stages.hashtable``).

``run_batch`` processes a whole command batch and writes event records; the semantics are
documented in ``docs/matching.md`` and pinned by the tests against the pure-Python
reference book. Before each command it checks that the worst case of that command fits
(pool rows, levels, side arrays, hash load, event slots); if not it returns a status
*before touching anything*, the Python wrapper grows what was short and resumes there.
"""

# ruff: noqa: SIM108, SIM109, SIM114  (explicit branches compile to plain compares in numba)

from __future__ import annotations

from numba import njit as _numba_njit

from stages import hashtable

from .layout import (
    B_BAND_HI,
    B_BAND_LO,
    B_HALTED,
    B_LOT,
    B_MAX,
    B_MIN,
    B_NLEVELS,
    B_NORDERS,
    B_SYMBOL,
    B_TICK,
    C_HTCOUNT,
    C_LFREE,
    C_OFREE,
    C_OPEN,
    L_COUNT,
    L_HEAD,
    L_PRICE,
    L_QTY,
    L_TAIL,
    O_ACCT,
    O_BOOK,
    O_FLAGS,
    O_ID,
    O_LEVEL,
    O_NEXT,
    O_PREV,
    O_PRICE,
    O_QTY,
    O_SIDE,
    O_STP,
    ST_DONE,
    ST_GROW_HASH,
    ST_GROW_LEVELS,
    ST_GROW_ORDERS,
    ST_GROW_SIDES,
    ST_OUT_FULL,
)


def njit(cache: bool = True, inline: str = "never"):
    """numba.njit without the runtime's reference counting (``_nrt=False``).

    Nothing here allocates: every function only indexes arrays owned by the Python wrapper,
    which keeps them alive for the whole call. Without NRT, passing a dozen arrays to each
    helper costs no atomic incref/decref pairs, which measured ~35 % of the per-command time.
    """
    return _numba_njit(cache=cache, _nrt=False, inline=inline)


# Enum values of stages.records, as plain ints for the compiled code (tests pin them).
K_NEW = 1
K_CANCEL = 2
K_REDUCE = 3
K_REPLACE = 4
K_HALT = 10
K_RESUME = 11
K_KILL = 12
K_KILL_RELEASE = 13
K_DEPOSIT = 20
K_WITHDRAW = 21

E_ACCEPTED = 1
E_REJECTED = 2
E_TRADE = 3
E_CANCELLED = 4
E_REPLACED = 5
E_BOOK_TOP = 6
E_HALTED = 7
E_RESUMED = 8
E_BALANCE = 9
E_KILL = 10
E_KILL_RELEASED = 11

F_MAKER = 1
F_TAKER = 2
F_DONE = 4
POST_ONLY = 1

STP_NONE = 0
STP_CANCEL_RESTING = 1
STP_CANCEL_AGGRESSOR = 2
STP_CANCEL_BOTH = 3
STP_DECREMENT = 4

R_USER_CANCEL = 1
R_IOC_REMAINDER = 2
R_FOK_NOT_FILLED = 3
R_MARKET_NO_LIQUIDITY = 4
R_SELF_TRADE = 5
R_KILL_SWITCH_CANCEL = 6
R_INVALID_COMMAND = 20
R_INVALID_QTY = 21
R_INVALID_PRICE = 22
R_SYMBOL_HALTED = 47
R_UNKNOWN_SYMBOL = 70
R_UNKNOWN_ORDER = 71
R_DUPLICATE_ORDER_ID = 72
R_NOT_OWNER = 73
R_TICK_SIZE = 74
R_LOT_SIZE = 75
R_MIN_QTY = 76
R_MAX_QTY = 77
R_PRICE_BAND = 78
R_POST_ONLY_WOULD_TAKE = 79
R_REDUCE_TOO_LARGE = 80

DT_MAX = 2**32 - 1


# --------------------------------------------------------------------------- event output
@njit(cache=True, inline="always")
def _emit(ew, pos, seq, ts, dt, oid, other, price, qty, acct, sym, kind, side, reason, flags):
    """Write one EVENT_DTYPE record as eight int64 words (pad bytes zeroed)."""
    ew[pos, 0] = seq
    ew[pos, 1] = ts
    ew[pos, 2] = oid
    ew[pos, 3] = other
    ew[pos, 4] = price
    ew[pos, 5] = qty
    ew[pos, 6] = dt | ((acct & 0xFFFFFFFF) << 32)
    ew[pos, 7] = (
        (sym & 0xFFFF)
        | ((kind & 0xFF) << 16)
        | ((side & 0xFF) << 24)
        | ((reason & 0xFF) << 32)
        | ((flags & 0xFF) << 40)
    )
    return pos + 1


# --------------------------------------------------------------------------- hash table
# stages.hashtable holds the table code (find is inlined where it is called); these two keep
# the count of stored ids that decides when the wrapper grows the table.
@njit(cache=True)
def ht_insert(ht, ctr, key, row):
    hashtable.put(ht, key, row)
    ctr[C_HTCOUNT] += 1


@njit(cache=True)
def _ht_delete(ht, ctr, key):
    if hashtable.delete(ht, key) >= 0:
        ctr[C_HTCOUNT] -= 1


@njit(cache=True)
def rebuild_hash(ord_, new_ht, ctr):
    """Re-insert every live order into a fresh (larger) table."""
    ctr[C_HTCOUNT] = 0
    for r in range(ord_.shape[0]):
        if ord_[r, O_ID] != 0:
            ht_insert(new_ht, ctr, ord_[r, O_ID], r)


# --------------------------------------------------------------------------- sides & levels
@njit(cache=True, inline="always")
def _key(side, price):
    """Sort key of a level: ascending keys put the best level last on both sides."""
    return price if side == 0 else -price


@njit(cache=True, inline="always")
def _bisect(spx, s, n, key):
    lo = 0
    hi = n
    # the touch is at the end: look there first, it is where most levels are
    if n > 0 and spx[s, n - 1] < key:
        return n
    while lo < hi:
        mid = (lo + hi) >> 1
        if spx[s, mid] < key:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True)
def _level_for(bk, spx, slv, lv, lfree, ctr, b, side, price):
    """The level row for ``price`` on a side, created (empty) if absent."""
    s = 2 * b + side
    n = bk[b, B_NLEVELS + side]
    key = _key(side, price)
    pos = _bisect(spx, s, n, key)
    if pos < n and spx[s, pos] == key:
        return slv[s, pos]
    ctr[C_LFREE] -= 1
    lvl = lfree[ctr[C_LFREE]]
    lv[lvl, L_PRICE] = price
    lv[lvl, L_QTY] = 0
    lv[lvl, L_COUNT] = 0
    lv[lvl, L_HEAD] = -1
    lv[lvl, L_TAIL] = -1
    for j in range(n, pos, -1):
        spx[s, j] = spx[s, j - 1]
        slv[s, j] = slv[s, j - 1]
    spx[s, pos] = key
    slv[s, pos] = lvl
    bk[b, B_NLEVELS + side] = n + 1
    return lvl


@njit(cache=True)
def _drop_level(bk, spx, slv, lfree, ctr, b, side, lvl, price):
    s = 2 * b + side
    n = bk[b, B_NLEVELS + side]
    if slv[s, n - 1] == lvl:
        pos = n - 1
    else:
        pos = _bisect(spx, s, n, _key(side, price))
    for j in range(pos, n - 1):
        spx[s, j] = spx[s, j + 1]
        slv[s, j] = slv[s, j + 1]
    bk[b, B_NLEVELS + side] = n - 1
    lfree[ctr[C_LFREE]] = lvl
    ctr[C_LFREE] += 1


@njit(cache=True)
def _attach(bk, spx, slv, lv, lfree, ctr, ord_, o):
    """Append resting order ``o`` (price, qty, side, book set) at the tail of its level."""
    b = ord_[o, O_BOOK]
    side = ord_[o, O_SIDE]
    lvl = _level_for(bk, spx, slv, lv, lfree, ctr, b, side, ord_[o, O_PRICE])
    tail = lv[lvl, L_TAIL]
    ord_[o, O_LEVEL] = lvl
    ord_[o, O_PREV] = tail
    ord_[o, O_NEXT] = -1
    if tail == -1:
        lv[lvl, L_HEAD] = o
    else:
        ord_[tail, O_NEXT] = o
    lv[lvl, L_TAIL] = o
    lv[lvl, L_QTY] += ord_[o, O_QTY]
    lv[lvl, L_COUNT] += 1
    bk[b, B_NORDERS + side] += 1


@njit(cache=True)
def _detach(bk, spx, slv, lv, lfree, ctr, ord_, o):
    """Unlink order ``o`` from its level (dropping the level if it empties); keep the row."""
    lvl = ord_[o, O_LEVEL]
    prv = ord_[o, O_PREV]
    nxt = ord_[o, O_NEXT]
    if prv == -1:
        lv[lvl, L_HEAD] = nxt
    else:
        ord_[prv, O_NEXT] = nxt
    if nxt == -1:
        lv[lvl, L_TAIL] = prv
    else:
        ord_[nxt, O_PREV] = prv
    lv[lvl, L_QTY] -= ord_[o, O_QTY]
    lv[lvl, L_COUNT] -= 1
    b = ord_[o, O_BOOK]
    side = ord_[o, O_SIDE]
    bk[b, B_NORDERS + side] -= 1
    ord_[o, O_LEVEL] = -1
    if lv[lvl, L_COUNT] == 0:
        _drop_level(bk, spx, slv, lfree, ctr, b, side, lvl, lv[lvl, L_PRICE])


@njit(cache=True)
def _alloc(ord_, ofree, ht, ctr, oid, acct, price, qty, side, b, stp, flags):
    ctr[C_OFREE] -= 1
    o = ofree[ctr[C_OFREE]]
    ord_[o, O_ID] = oid
    ord_[o, O_ACCT] = acct
    ord_[o, O_PRICE] = price
    ord_[o, O_QTY] = qty
    ord_[o, O_SIDE] = side
    ord_[o, O_BOOK] = b
    ord_[o, O_LEVEL] = -1
    ord_[o, O_PREV] = -1
    ord_[o, O_NEXT] = -1
    ord_[o, O_STP] = stp
    ord_[o, O_FLAGS] = flags
    ht_insert(ht, ctr, oid, o)
    ctr[C_OPEN] += 1
    return o


@njit(cache=True)
def _free(ord_, ofree, ht, ctr, o):
    _ht_delete(ht, ctr, ord_[o, O_ID])
    ord_[o, O_ID] = 0
    ofree[ctr[C_OFREE]] = o
    ctr[C_OFREE] += 1
    ctr[C_OPEN] -= 1


@njit(cache=True, inline="always")
def _remove(bk, spx, slv, lv, lfree, ord_, ofree, ht, ctr, o):
    _detach(bk, spx, slv, lv, lfree, ctr, ord_, o)
    _free(ord_, ofree, ht, ctr, o)


@njit(cache=True, inline="always")
def _shrink(lv, ord_, o, by):
    """Reduce resting order ``o`` in place (keeps its time priority)."""
    ord_[o, O_QTY] -= by
    lv[ord_[o, O_LEVEL], L_QTY] -= by


@njit(cache=True, inline="always")
def _top(bk, slv, lv, b, side):
    n = bk[b, B_NLEVELS + side]
    if n == 0:
        return 0, 0, 0
    lvl = slv[2 * b + side, n - 1]
    return lv[lvl, L_PRICE], lv[lvl, L_QTY], lv[lvl, L_COUNT]


@njit(cache=True, inline="always")
def _acceptable(side, limit, level_price):
    """May an aggressor of ``side`` with ``limit`` (0 = unbounded) trade at level_price?"""
    if limit == 0:
        return True
    if side == 0:
        return level_price <= limit
    return level_price >= limit


@njit(cache=True, inline="always")
def _crosses(bk, slv, lv, b, side, price):
    n = bk[b, B_NLEVELS + 1 - side]
    if n == 0:
        return False
    return _acceptable(side, price, lv[slv[2 * b + 1 - side, n - 1], L_PRICE])


@njit(cache=True)
def _fok_fillable(bk, slv, lv, ord_, b, side, limit, qty, acct, stp):
    """Would an all-or-nothing aggressor be filled completely by trades, right now?

    Walks the opposite side in priority order exactly as matching would: a self order under
    CANCEL_RESTING is skipped (it would be cancelled, not traded); under the other STP modes
    a self order ends the walk (matching would stop or eat the aggressor there).
    """
    opp = 1 - side
    s = 2 * b + opp
    avail = 0
    for j in range(bk[b, B_NLEVELS + opp] - 1, -1, -1):
        lvl = slv[s, j]
        if not _acceptable(side, limit, lv[lvl, L_PRICE]):
            return False
        o = lv[lvl, L_HEAD]
        while o != -1:
            if stp != STP_NONE and ord_[o, O_ACCT] == acct:
                if stp != STP_CANCEL_RESTING:
                    return False
            else:
                oq = ord_[o, O_QTY]
                if oq >= qty - avail:  # avail + oq >= qty, without the sum (avail < qty)
                    return True
                avail += oq
            o = ord_[o, O_NEXT]
    return False


@njit(cache=True)
def _match(
    ew, pos, seq, ts, dt, bk, spx, slv, lv, lfree, ord_, ofree, ht, ctr,
    b, sym, side, limit, qty, oid, acct, stp, taker_price,
):  # fmt: skip
    """HOT. Match an aggressor against the opposite side; returns (remaining qty, pos).

    Emits TRADE pairs (taker's event first) and self-trade-prevention CANCELLED events. A
    remaining qty of 0 means the aggressor is finished (filled or cancelled by STP). Must
    not allocate: it only moves rows between free stacks and levels.
    """
    opp = 1 - side
    s = 2 * b + opp
    rem = qty
    while rem > 0:
        n = bk[b, B_NLEVELS + opp]
        if n == 0:
            break
        lvl = slv[s, n - 1]
        lp = lv[lvl, L_PRICE]
        if not _acceptable(side, limit, lp):
            break
        o = lv[lvl, L_HEAD]
        while o != -1 and rem > 0:
            nxt = ord_[o, O_NEXT]
            mq = ord_[o, O_QTY]
            mid = ord_[o, O_ID]
            macct = ord_[o, O_ACCT]
            if stp != STP_NONE and macct == acct:
                if stp == STP_CANCEL_RESTING:
                    pos = _emit(ew, pos, seq, ts, dt, mid, 0, lp, mq, macct, sym,
                                E_CANCELLED, opp, R_SELF_TRADE, F_DONE)  # fmt: skip
                    _remove(bk, spx, slv, lv, lfree, ord_, ofree, ht, ctr, o)
                elif stp == STP_CANCEL_AGGRESSOR:
                    pos = _emit(ew, pos, seq, ts, dt, oid, 0, taker_price, rem, acct, sym,
                                E_CANCELLED, side, R_SELF_TRADE, F_DONE)  # fmt: skip
                    return 0, pos
                elif stp == STP_CANCEL_BOTH:
                    pos = _emit(ew, pos, seq, ts, dt, oid, 0, taker_price, rem, acct, sym,
                                E_CANCELLED, side, R_SELF_TRADE, F_DONE)  # fmt: skip
                    pos = _emit(ew, pos, seq, ts, dt, mid, 0, lp, mq, macct, sym,
                                E_CANCELLED, opp, R_SELF_TRADE, F_DONE)  # fmt: skip
                    _remove(bk, spx, slv, lv, lfree, ord_, ofree, ht, ctr, o)
                    return 0, pos
                else:  # DECREMENT_AND_CANCEL
                    m = min(rem, mq)
                    rem -= m
                    pos = _emit(ew, pos, seq, ts, dt, oid, 0, taker_price, m, acct, sym,
                                E_CANCELLED, side, R_SELF_TRADE,
                                F_DONE if rem == 0 else 0)  # fmt: skip
                    pos = _emit(ew, pos, seq, ts, dt, mid, 0, lp, m, macct, sym,
                                E_CANCELLED, opp, R_SELF_TRADE,
                                F_DONE if mq == m else 0)  # fmt: skip
                    if mq == m:
                        _remove(bk, spx, slv, lv, lfree, ord_, ofree, ht, ctr, o)
                    else:
                        _shrink(lv, ord_, o, m)
            else:
                q = min(rem, mq)
                rem -= q
                pos = _emit(ew, pos, seq, ts, dt, oid, mid, lp, q, acct, sym, E_TRADE, side, 0,
                            F_TAKER | (F_DONE if rem == 0 else 0))  # fmt: skip
                pos = _emit(ew, pos, seq, ts, dt, mid, oid, lp, q, macct, sym, E_TRADE, opp, 0,
                            F_MAKER | (F_DONE if mq == q else 0))  # fmt: skip
                if mq == q:
                    _remove(bk, spx, slv, lv, lfree, ord_, ofree, ht, ctr, o)
                else:
                    _shrink(lv, ord_, o, q)
            o = nxt
    return rem, pos


@njit(cache=True, inline="always")
def _emit_tops(ew, pos, seq, ts, dt, bk, slv, lv, b, before):
    """BOOK_TOP for each side of book ``b`` whose (price, qty, count) differs from before."""
    sym = bk[b, B_SYMBOL]
    for side in range(2):
        p, q, c = _top(bk, slv, lv, b, side)
        if p != before[3 * side] or q != before[3 * side + 1] or c != before[3 * side + 2]:
            pos = _emit(ew, pos, seq, ts, dt, 0, c, p, q, 0, sym, E_BOOK_TOP, side, 0, 0)
    return pos


@njit(cache=True, inline="always")
def _save_tops(bk, slv, lv, b, into, at):
    for side in range(2):
        p, q, c = _top(bk, slv, lv, b, side)
        into[at + 3 * side] = p
        into[at + 3 * side + 1] = q
        into[at + 3 * side + 2] = c


@njit(cache=True)
def _orders_reachable(bk, slv, lv, b, side, limit):
    """How many resting orders an aggressor of ``side`` with ``limit`` could touch."""
    opp = 1 - side
    s = 2 * b + opp
    total = 0
    for j in range(bk[b, B_NLEVELS + opp] - 1, -1, -1):
        lvl = slv[s, j]
        if not _acceptable(side, limit, lv[lvl, L_PRICE]):
            break
        total += lv[lvl, L_COUNT]
    return total


@njit(cache=True)
def _orders_of_account(ord_, acct):
    total = 0
    for r in range(ord_.shape[0]):
        if ord_[r, O_ID] != 0 and (acct == 0 or ord_[r, O_ACCT] == acct):
            total += 1
    return total


@njit(cache=True, inline="always")
def _events_bound(kind, b, side, price, oid, acct, nbooks, bk, slv, lv, ord_, ht, ctr, room):
    """An upper bound on the events one command can emit, as tight as ``room`` requires."""
    if kind == K_NEW or kind == K_REPLACE:
        if b < 0:
            return 4
        if kind == K_REPLACE:
            o = hashtable.find(ht, oid)
            if o < 0:
                return 4
            side = ord_[o, O_SIDE]
        if side > 1:
            return 4
        cheap = 2 * bk[b, B_NORDERS + 1 - side] + 8
        if cheap <= room:
            return cheap
        return 2 * _orders_reachable(bk, slv, lv, b, side, price) + 8
    if kind == K_KILL:
        cheap = ctr[C_OPEN] + 2 * nbooks + 2
        if cheap <= room:
            return cheap
        return _orders_of_account(ord_, acct) + 2 * nbooks + 2
    return 4


@njit(cache=True)
def run_batch(
    cw, start, ew, pos, t0, emit_top, sym_index, bk, spx, slv, lv, lfree, ord_, ofree, ht, ctr,
    scratch,
):  # fmt: skip
    """HOT. Process commands ``cw[start:]`` in order, writing events at ``ew[pos:]``.

    ``cw`` / ``ew`` are the COMMAND_DTYPE / EVENT_DTYPE batches viewed as (n, 8) int64.
    Returns ``(next command, next event slot, status, events needed)``; status ST_DONE when
    the batch is finished, otherwise what must grow before resuming at ``next command``
    (nothing of that command has been applied). Must not allocate or call Python per
    record: every command is a few array reads and writes.
    """
    nbooks = bk.shape[0]
    ncmd = cw.shape[0]
    cap_out = ew.shape[0]
    side_cap = spx.shape[1]
    htcap = ht.shape[0]
    before = scratch
    i = start
    while i < ncmd:
        seq = cw[i, 0]
        ts = cw[i, 1]
        oid = cw[i, 3]
        price = cw[i, 4]
        qty = cw[i, 5]
        w6 = cw[i, 6]
        w7 = cw[i, 7]
        acct = w6 & 0xFFFFFFFF
        sym = (w6 >> 32) & 0xFFFF
        kind = (w6 >> 48) & 0xFF
        side = (w6 >> 56) & 0xFF
        otype = w7 & 0xFF
        tif = (w7 >> 8) & 0xFF
        stp = (w7 >> 16) & 0xFF
        flags = (w7 >> 24) & 0xFF
        reason = (w7 >> 32) & 0xFF
        b = sym_index[sym]

        # ---- capacity for the worst case of this command, checked before touching anything
        if ctr[C_OFREE] < 1:
            return i, pos, ST_GROW_ORDERS, 0
        if ctr[C_LFREE] < 1:
            return i, pos, ST_GROW_LEVELS, 0
        if 2 * (ctr[C_HTCOUNT] + 1) > htcap:
            return i, pos, ST_GROW_HASH, 0
        if kind == K_REPLACE:
            ro = hashtable.find(ht, oid)
            if ro >= 0:
                b = ord_[ro, O_BOOK]
        if b >= 0 and (bk[b, B_NLEVELS] >= side_cap or bk[b, B_NLEVELS + 1] >= side_cap):
            return i, pos, ST_GROW_SIDES, 0
        room = cap_out - pos
        if room < 8:
            return i, pos, ST_OUT_FULL, 8
        need = _events_bound(kind, b, side, price, oid, acct, nbooks, bk, slv, lv, ord_, ht,
                             ctr, room)  # fmt: skip
        if need > room:
            return i, pos, ST_OUT_FULL, need
        b = sym_index[sym]

        if ts == 0:
            dt = 0
        else:
            dt = t0 - ts
            if dt < 0:
                dt = 0
            elif dt > DT_MAX:
                dt = DT_MAX
        i += 1

        # ---- rejected upstream: report it, touch nothing
        if reason != 0:
            pos = _emit(ew, pos, seq, ts, dt, oid, 0, price, qty, acct, sym, E_REJECTED, side,
                        reason, 0)  # fmt: skip
            continue

        rej = 0
        if kind == K_NEW:
            post = flags & POST_ONLY
            if b < 0:
                rej = R_UNKNOWN_SYMBOL
            elif side > 1 or otype > 1 or tif > 2 or stp > 4 or (flags & ~POST_ONLY) != 0:
                rej = R_INVALID_COMMAND
            elif post != 0 and (otype != 0 or tif != 0):
                rej = R_INVALID_COMMAND
            elif oid <= 0:
                rej = R_INVALID_COMMAND
            elif qty <= 0:
                rej = R_INVALID_QTY
            elif price < 0 or (otype == 0 and price == 0):
                rej = R_INVALID_PRICE
            elif bk[b, B_HALTED] != 0:
                rej = R_SYMBOL_HALTED
            elif hashtable.find(ht, oid) >= 0:
                rej = R_DUPLICATE_ORDER_ID
            elif qty % bk[b, B_LOT] != 0:
                rej = R_LOT_SIZE
            elif qty < bk[b, B_MIN]:
                rej = R_MIN_QTY
            elif qty > bk[b, B_MAX]:
                rej = R_MAX_QTY
            elif otype == 0 and price % bk[b, B_TICK] != 0:
                rej = R_TICK_SIZE
            elif otype == 0 and (
                (bk[b, B_BAND_LO] != 0 and price < bk[b, B_BAND_LO])
                or (bk[b, B_BAND_HI] != 0 and price > bk[b, B_BAND_HI])
            ):
                rej = R_PRICE_BAND
            elif post != 0 and _crosses(bk, slv, lv, b, side, price):
                rej = R_POST_ONLY_WOULD_TAKE
            if rej != 0:
                pos = _emit(ew, pos, seq, ts, dt, oid, 0, price, qty, acct, sym, E_REJECTED,
                            side, rej, 0)  # fmt: skip
                continue
            _save_tops(bk, slv, lv, b, before, 0)
            pos = _emit(ew, pos, seq, ts, dt, oid, 0, price, qty, acct, sym, E_ACCEPTED, side,
                        0, 0)  # fmt: skip
            if tif == 2 and not _fok_fillable(bk, slv, lv, ord_, b, side, price, qty, acct, stp):
                pos = _emit(ew, pos, seq, ts, dt, oid, 0, price, qty, acct, sym, E_CANCELLED,
                            side, R_FOK_NOT_FILLED, F_DONE)  # fmt: skip
            else:
                rem, pos = _match(ew, pos, seq, ts, dt, bk, spx, slv, lv, lfree, ord_, ofree,
                                  ht, ctr, b, sym, side, price, qty, oid, acct, stp, price)  # fmt: skip
                if rem > 0:
                    if otype == 1:
                        pos = _emit(ew, pos, seq, ts, dt, oid, 0, price, rem, acct, sym,
                                    E_CANCELLED, side, R_MARKET_NO_LIQUIDITY, F_DONE)  # fmt: skip
                    elif tif == 1:
                        pos = _emit(ew, pos, seq, ts, dt, oid, 0, price, rem, acct, sym,
                                    E_CANCELLED, side, R_IOC_REMAINDER, F_DONE)  # fmt: skip
                    else:
                        o = _alloc(ord_, ofree, ht, ctr, oid, acct, price, rem, side, b, stp,
                                   flags)  # fmt: skip
                        _attach(bk, spx, slv, lv, lfree, ctr, ord_, o)
            if emit_top:
                pos = _emit_tops(ew, pos, seq, ts, dt, bk, slv, lv, b, before)

        elif kind == K_CANCEL or kind == K_REDUCE or kind == K_REPLACE:
            o = hashtable.find(ht, oid)
            if o < 0:
                rej = R_UNKNOWN_ORDER
            elif ord_[o, O_ACCT] != acct:
                rej = R_NOT_OWNER
            else:
                b = ord_[o, O_BOOK]
                lot = bk[b, B_LOT]
                if kind == K_REDUCE:
                    if qty <= 0:
                        rej = R_INVALID_QTY
                    elif qty >= ord_[o, O_QTY]:
                        rej = R_REDUCE_TOO_LARGE
                    elif qty % lot != 0:
                        rej = R_LOT_SIZE
                elif kind == K_REPLACE:
                    if bk[b, B_HALTED] != 0:
                        rej = R_SYMBOL_HALTED
                    elif qty <= 0:
                        rej = R_INVALID_QTY
                    elif price <= 0:
                        rej = R_INVALID_PRICE
                    elif qty % lot != 0:
                        rej = R_LOT_SIZE
                    elif qty < bk[b, B_MIN]:
                        rej = R_MIN_QTY
                    elif qty > bk[b, B_MAX]:
                        rej = R_MAX_QTY
                    elif price % bk[b, B_TICK] != 0:
                        rej = R_TICK_SIZE
                    elif (bk[b, B_BAND_LO] != 0 and price < bk[b, B_BAND_LO]) or (
                        bk[b, B_BAND_HI] != 0 and price > bk[b, B_BAND_HI]
                    ):
                        rej = R_PRICE_BAND
                    elif (ord_[o, O_FLAGS] & POST_ONLY) != 0 and _crosses(
                        bk, slv, lv, b, ord_[o, O_SIDE], price
                    ):
                        rej = R_POST_ONLY_WOULD_TAKE
            if rej != 0:
                pos = _emit(ew, pos, seq, ts, dt, oid, 0, price, qty, acct, sym, E_REJECTED,
                            side, rej, 0)  # fmt: skip
                continue
            osym = bk[b, B_SYMBOL]
            oside = ord_[o, O_SIDE]
            _save_tops(bk, slv, lv, b, before, 0)
            if kind == K_CANCEL:
                pos = _emit(ew, pos, seq, ts, dt, oid, 0, ord_[o, O_PRICE], ord_[o, O_QTY],
                            acct, osym, E_CANCELLED, oside, R_USER_CANCEL, F_DONE)  # fmt: skip
                _remove(bk, spx, slv, lv, lfree, ord_, ofree, ht, ctr, o)
            elif kind == K_REDUCE:
                _shrink(lv, ord_, o, qty)
                pos = _emit(ew, pos, seq, ts, dt, oid, 0, ord_[o, O_PRICE], ord_[o, O_QTY],
                            acct, osym, E_REPLACED, oside, 0, 0)  # fmt: skip
            else:
                old_price = ord_[o, O_PRICE]
                old_qty = ord_[o, O_QTY]
                pos = _emit(ew, pos, seq, ts, dt, oid, 0, price, qty, acct, osym, E_REPLACED,
                            oside, 0, 0)  # fmt: skip
                if price == old_price and qty <= old_qty:
                    _shrink(lv, ord_, o, old_qty - qty)
                else:
                    _detach(bk, spx, slv, lv, lfree, ctr, ord_, o)
                    rem, pos = _match(ew, pos, seq, ts, dt, bk, spx, slv, lv, lfree, ord_,
                                      ofree, ht, ctr, b, osym, oside, price, qty, oid, acct,
                                      ord_[o, O_STP], price)  # fmt: skip
                    if rem > 0:
                        ord_[o, O_PRICE] = price
                        ord_[o, O_QTY] = rem
                        _attach(bk, spx, slv, lv, lfree, ctr, ord_, o)
                    else:
                        _free(ord_, ofree, ht, ctr, o)
            if emit_top:
                pos = _emit_tops(ew, pos, seq, ts, dt, bk, slv, lv, b, before)

        elif kind == K_HALT or kind == K_RESUME:
            if b < 0:
                pos = _emit(ew, pos, seq, ts, dt, oid, 0, price, qty, acct, sym, E_REJECTED,
                            side, R_UNKNOWN_SYMBOL, 0)  # fmt: skip
                continue
            bk[b, B_HALTED] = 1 if kind == K_HALT else 0
            pos = _emit(ew, pos, seq, ts, dt, 0, 0, 0, 0, acct, sym,
                        E_HALTED if kind == K_HALT else E_RESUMED, 0, 0, 0)  # fmt: skip

        elif kind == K_KILL:
            for bb in range(nbooks):
                _save_tops(bk, slv, lv, bb, before, 6 * bb)
            for bb in range(nbooks):
                bsym = bk[bb, B_SYMBOL]
                for sd in range(2):
                    s = 2 * bb + sd
                    # walk levels best first; dropping level j only shifts levels above j
                    for j in range(bk[bb, B_NLEVELS + sd] - 1, -1, -1):
                        o = lv[slv[s, j], L_HEAD]
                        while o != -1:
                            nxt = ord_[o, O_NEXT]
                            if acct == 0 or ord_[o, O_ACCT] == acct:
                                pos = _emit(ew, pos, seq, ts, dt, ord_[o, O_ID], 0,
                                            ord_[o, O_PRICE], ord_[o, O_QTY], ord_[o, O_ACCT],
                                            bsym, E_CANCELLED, sd, R_KILL_SWITCH_CANCEL,
                                            F_DONE)  # fmt: skip
                                _remove(bk, spx, slv, lv, lfree, ord_, ofree, ht, ctr, o)
                            o = nxt
            pos = _emit(ew, pos, seq, ts, dt, 0, 0, 0, 0, acct, sym, E_KILL, 0, 0, 0)
            if emit_top:
                for bb in range(nbooks):
                    pos = _emit_tops(ew, pos, seq, ts, dt, bk, slv, lv, bb,
                                     before[6 * bb : 6 * bb + 6])  # fmt: skip

        elif kind == K_KILL_RELEASE:
            pos = _emit(ew, pos, seq, ts, dt, 0, 0, 0, 0, acct, sym, E_KILL_RELEASED, 0, 0, 0)

        elif kind == K_DEPOSIT or kind == K_WITHDRAW:
            if qty <= 0:
                pos = _emit(ew, pos, seq, ts, dt, oid, 0, price, qty, acct, sym, E_REJECTED,
                            side, R_INVALID_QTY, 0)  # fmt: skip
                continue
            pos = _emit(ew, pos, seq, ts, dt, 0, 0, 0, qty if kind == K_DEPOSIT else -qty,
                        acct, sym, E_BALANCE, 0, 0, 0)  # fmt: skip
        else:
            pos = _emit(ew, pos, seq, ts, dt, oid, 0, price, qty, acct, sym, E_REJECTED, side,
                        R_INVALID_COMMAND, 0)  # fmt: skip
    return i, pos, ST_DONE, 0


# --------------------------------------------------------------------------- state export
@njit(cache=True)
def export_orders(bk, slv, lv, ord_, out):
    """Write every resting order in canonical order (book, side, best level first, FIFO).

    Row: book index, side, price, order id, account, open qty, stp, flags. This order is
    what the state hash covers and what a snapshot restores, so it is independent of which
    pool rows the orders happen to occupy.
    """
    r = 0
    for b in range(bk.shape[0]):
        for side in range(2):
            s = 2 * b + side
            for j in range(bk[b, B_NLEVELS + side] - 1, -1, -1):
                lvl = slv[s, j]
                o = lv[lvl, L_HEAD]
                while o != -1:
                    out[r, 0] = b
                    out[r, 1] = side
                    out[r, 2] = ord_[o, O_PRICE]
                    out[r, 3] = ord_[o, O_ID]
                    out[r, 4] = ord_[o, O_ACCT]
                    out[r, 5] = ord_[o, O_QTY]
                    out[r, 6] = ord_[o, O_STP]
                    out[r, 7] = ord_[o, O_FLAGS]
                    r += 1
                    o = ord_[o, O_NEXT]
    return r


@njit(cache=True)
def import_orders(bk, spx, slv, lv, lfree, ord_, ofree, ht, ctr, rows):
    """Rest the rows of ``export_orders`` again, in order (restores FIFO priority)."""
    for r in range(rows.shape[0]):
        o = _alloc(ord_, ofree, ht, ctr, rows[r, 3], rows[r, 4], rows[r, 2], rows[r, 5],
                   rows[r, 1], rows[r, 0], rows[r, 6], rows[r, 7])  # fmt: skip
        _attach(bk, spx, slv, lv, lfree, ctr, ord_, o)
