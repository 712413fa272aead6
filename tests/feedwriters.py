"""Writers of small, spec-conformant ITCH 5.0 and LOBSTER files for the feed tests.

The ITCH writer is deliberately independent of ``stages.ingest.itch50``: it packs messages
with ``struct`` format strings written from the specification's field tables, so a wrong
offset in the parser's dtypes shows up as a test failure instead of agreeing with itself.
"""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

#: Per type: the body's struct format (after the 11-byte header) and its field names in order.
ITCH_BODIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "S": ("c", ("event_code",)),
    "R": (
        "8sccIcc2scccccIc",
        (
            "stock",
            "market_category",
            "financial_status_indicator",
            "round_lot_size",
            "round_lots_only",
            "issue_classification",
            "issue_sub_type",
            "authenticity",
            "short_sale_threshold_indicator",
            "ipo_flag",
            "luld_reference_price_tier",
            "etp_flag",
            "etp_leverage_factor",
            "inverse_indicator",
        ),
    ),
    "H": ("8scc4s", ("stock", "trading_state", "reserved", "reason")),
    "Y": ("8sc", ("stock", "reg_sho_action")),
    "L": (
        "4s8sccc",
        (
            "mpid",
            "stock",
            "primary_market_maker",
            "market_maker_mode",
            "market_participant_state",
        ),
    ),
    "V": ("QQQ", ("level1", "level2", "level3")),
    "W": ("c", ("breached_level",)),
    "K": (
        "8sIcI",
        (
            "stock",
            "ipo_quotation_release_time",
            "ipo_quotation_release_qualifier",
            "ipo_price",
        ),
    ),
    "J": (
        "8sIIII",
        (
            "stock",
            "auction_collar_reference_price",
            "upper_auction_collar_price",
            "lower_auction_collar_price",
            "auction_collar_extension",
        ),
    ),
    "h": ("8scc", ("stock", "market_code", "operational_halt_action")),
    "A": ("QcI8sI", ("order_reference_number", "buy_sell_indicator", "shares", "stock", "price")),
    "F": (
        "QcI8sI4s",
        (
            "order_reference_number",
            "buy_sell_indicator",
            "shares",
            "stock",
            "price",
            "attribution",
        ),
    ),
    "E": ("QIQ", ("order_reference_number", "executed_shares", "match_number")),
    "C": (
        "QIQcI",
        (
            "order_reference_number",
            "executed_shares",
            "match_number",
            "printable",
            "execution_price",
        ),
    ),
    "X": ("QI", ("order_reference_number", "cancelled_shares")),
    "D": ("Q", ("order_reference_number",)),
    "U": (
        "QQII",
        ("original_order_reference_number", "new_order_reference_number", "shares", "price"),
    ),
    "P": (
        "QcI8sIQ",
        (
            "order_reference_number",
            "buy_sell_indicator",
            "shares",
            "stock",
            "price",
            "match_number",
        ),
    ),
    "Q": ("Q8sIQc", ("shares", "stock", "cross_price", "match_number", "cross_type")),
    "B": ("Q", ("match_number",)),
    "I": (
        "QQc8sIIIcc",
        (
            "paired_shares",
            "imbalance_shares",
            "imbalance_direction",
            "stock",
            "far_price",
            "near_price",
            "current_reference_price",
            "cross_type",
            "price_variation_indicator",
        ),
    ),
    "N": ("8sc", ("stock", "interest_flag")),
    "O": (
        "8scIIIQII",
        (
            "stock",
            "open_eligibility_status",
            "minimum_allowable_price",
            "maximum_allowable_price",
            "near_execution_price",
            "near_execution_time",
            "lower_price_range_collar",
            "upper_price_range_collar",
        ),
    ),
}

#: Total lengths from the specification's tables, for an independent check of the writer.
ITCH_SPEC_LENGTHS = {
    "S": 12, "R": 39, "H": 25, "Y": 20, "L": 26, "V": 35, "W": 12, "K": 28, "J": 35,
    "h": 21, "A": 36, "F": 40, "E": 31, "C": 36, "X": 23, "D": 19, "U": 35, "P": 44,
    "Q": 40, "B": 19, "I": 50, "N": 20, "O": 48,
}  # fmt: skip


def _field_value(fmt_char: str, size: int, value: object) -> object:
    """Defaults and padding: text fields are space-padded ASCII, numbers default to 0."""
    if fmt_char in "cs":
        text = value if isinstance(value, bytes) else str(value if value is not None else "")
        data = text if isinstance(text, bytes) else text.encode("ascii")
        return data.ljust(size if fmt_char == "s" else 1, b" ")
    return 0 if value is None else int(value)


def itch_message(
    kind: str, *, locate: int = 0, tracking: int = 0, timestamp: int = 0, **fields: object
) -> bytes:
    """One ITCH 5.0 message (without length prefix); unnamed fields are zero or blanks."""
    fmt, names = ITCH_BODIES[kind]
    unknown = set(fields) - set(names)
    if unknown:
        raise TypeError(f"ITCH {kind!r} has no field(s) {sorted(unknown)}; fields: {names}")
    codes = []
    i = 0
    while i < len(fmt):  # split the format into (char, size) per field
        j = i
        while fmt[j].isdigit():
            j += 1
        size = int(fmt[i:j]) if j > i else 1
        codes.append((fmt[j], size))
        i = j + 1
    values = [
        _field_value(code, size, fields.get(name))
        for (code, size), name in zip(codes, names, strict=True)
    ]
    header = struct.pack(">cHH", kind.encode(), locate, tracking) + timestamp.to_bytes(6, "big")
    body = struct.pack(">" + fmt, *values)
    message = header + body
    assert len(message) == ITCH_SPEC_LENGTHS[kind], (kind, len(message))
    return message


def itch_stream(messages: Iterable[bytes], zero_prefix: bool = False) -> bytes:
    """Messages framed with 2-byte big-endian length prefixes (or zeroed ones)."""
    out = bytearray()
    for message in messages:
        out += struct.pack(">H", 0 if zero_prefix else len(message))
        out += message
    return bytes(out)


def write_itch(path: Path, messages: Iterable[bytes], zero_prefix: bool = False) -> Path:
    path.write_bytes(itch_stream(messages, zero_prefix))
    return path


# --- LOBSTER -------------------------------------------------------------------------------

EMPTY_ASK_PRICE = 9999999999
EMPTY_BID_PRICE = -9999999999


def lobster_message_rows(rows: Sequence[tuple[float | str, int, int, int, int, int]]) -> str:
    """LOBSTER message-file text: ``Time,Type,OrderID,Size,Price,Direction`` per row."""
    lines = []
    for time, kind, order_id, size, price, direction in rows:
        stamp = time if isinstance(time, str) else f"{time:.9f}"
        lines.append(f"{stamp},{kind},{order_id},{size},{price},{direction}")
    return "\n".join(lines) + "\n"


def lobster_book_row(
    asks: Sequence[tuple[int, int]], bids: Sequence[tuple[int, int]], levels: int
) -> str:
    """One orderbook-file row: AskPrice1,AskSize1,BidPrice1,BidSize1,... with empty levels
    written as LOBSTER writes them."""
    cells: list[int] = []
    for level in range(levels):
        ask = asks[level] if level < len(asks) else (EMPTY_ASK_PRICE, 0)
        bid = bids[level] if level < len(bids) else (EMPTY_BID_PRICE, 0)
        cells += [ask[0], ask[1], bid[0], bid[1]]
    return ",".join(str(c) for c in cells)


# --- reference simulators: an obviously-correct FIFO exchange that writes both formats -----


class FifoBook:
    """A plain price-time book of dicts and lists; the reference the replays are held to."""

    def __init__(self) -> None:
        self.levels: list[dict[int, list[list[int]]]] = [{}, {}]  # side -> price -> [[id, qty]]
        self.where: dict[int, tuple[int, int]] = {}  # id -> (side, price)

    def add(self, oid: int, side: int, price: int, qty: int) -> None:
        self.levels[side].setdefault(price, []).append([oid, qty])
        self.where[oid] = (side, price)

    def reduce(self, oid: int, by: int) -> None:
        side, price = self.where[oid]
        queue = self.levels[side][price]
        entry = next(e for e in queue if e[0] == oid)
        entry[1] -= by
        if entry[1] <= 0:
            queue.remove(entry)
            del self.where[oid]
            if not queue:
                del self.levels[side][price]

    def open_qty(self, oid: int) -> int:
        side, price = self.where[oid]
        return next(e[1] for e in self.levels[side][price] if e[0] == oid)

    def best(self, side: int) -> int | None:
        prices = self.levels[side]
        if not prices:
            return None
        return max(prices) if side == 0 else min(prices)

    def depth(self, side: int) -> list[tuple[int, int]]:
        """(price, total qty) best first."""
        prices = sorted(self.levels[side], reverse=(side == 0))
        return [(p, sum(e[1] for e in self.levels[side][p])) for p in prices]

    def lobster_row(self, levels: int) -> list[int]:
        asks, bids = self.depth(1), self.depth(0)
        cells: list[int] = []
        for lvl in range(levels):
            ask = asks[lvl] if lvl < len(asks) else (EMPTY_ASK_PRICE, 0)
            bid = bids[lvl] if lvl < len(bids) else (EMPTY_BID_PRICE, 0)
            cells += [ask[0], ask[1], bid[0], bid[1]]
        return cells


def simulate_lobster(
    rng, steps: int, levels: int, preexisting: int = 0, halts: bool = True
) -> tuple[list[tuple], list[list[int]]]:
    """A consistent LOBSTER message stream and its orderbook rows (after each message).

    The exchange is FIFO, so executions (type 4) always name the oldest order at the best
    level. ``preexisting`` orders rest before the first message and never appear as a type 1
    (as in a LOBSTER slice that starts mid-day). Bids sit on 90..99, asks on 101..110
    (× 10000) so adds never cross; ``levels`` should cover the 10 prices per side for an
    exact seeded replay.
    """
    book = FifoBook()
    next_id = 1000
    for _ in range(preexisting):
        side = int(rng.integers(0, 2))
        price = int(rng.integers(90, 100) if side == 0 else rng.integers(101, 111)) * 10000
        book.add(next_id, side, price, int(rng.integers(1, 50)))
        next_id += 1
    messages: list[tuple] = []
    rows: list[list[int]] = []
    halted = False
    t = 34200.0
    for _ in range(steps):
        t += float(rng.integers(1, 1000)) / 1e6
        roll = rng.random()
        live = list(book.where)
        if halts and roll < 0.02:
            halted = not halted
            messages.append((t, 7, 0, 0, -1 if halted else 1, -1))
        elif halted or roll < 0.45 or not live:
            if halted:  # cancels still happen in a halt; adds wait for the resume
                if not live:
                    messages.append((t, 5, 0, 1, 1000000, 1))
                    rows.append(book.lobster_row(levels))
                    continue
                oid = live[int(rng.integers(0, len(live)))]
                side, price = book.where[oid]
                qty = book.open_qty(oid)
                book.reduce(oid, qty)
                messages.append((t, 3, oid, qty, price, 1 if side == 0 else -1))
            else:
                side = int(rng.integers(0, 2))
                price = int(rng.integers(90, 100) if side == 0 else rng.integers(101, 111))
                qty = int(rng.integers(1, 100))
                book.add(next_id, side, price * 10000, qty)
                messages.append((t, 1, next_id, qty, price * 10000, 1 if side == 0 else -1))
                next_id += 1
        elif roll < 0.6:
            oid = live[int(rng.integers(0, len(live)))]
            side, price = book.where[oid]
            qty = book.open_qty(oid)
            if qty > 1:
                by = int(rng.integers(1, qty))
                book.reduce(oid, by)
                messages.append((t, 2, oid, by, price, 1 if side == 0 else -1))
            else:
                book.reduce(oid, qty)
                messages.append((t, 3, oid, qty, price, 1 if side == 0 else -1))
        elif roll < 0.75:
            oid = live[int(rng.integers(0, len(live)))]
            side, price = book.where[oid]
            qty = book.open_qty(oid)
            book.reduce(oid, qty)
            messages.append((t, 3, oid, qty, price, 1 if side == 0 else -1))
        elif roll < 0.95:
            side = int(rng.integers(0, 2))
            if book.best(side) is None:
                side = 1 - side
            price = book.best(side)
            oid, qty = book.levels[side][price][0]
            size = int(rng.integers(1, qty + 1))
            book.reduce(oid, size)
            messages.append((t, 4, oid, size, price, 1 if side == 0 else -1))
        else:
            messages.append((t, int(rng.integers(5, 7)), 0, 10, 1000000, 1))
        rows.append(book.lobster_row(levels))
    return messages, rows


def simulate_itch(
    rng, steps: int, stocks: int = 3
) -> tuple[list[bytes], dict[int, FifoBook], dict[str, int]]:
    """A random ITCH 5.0 day touching every message type, with its reference books.

    Returns the messages, the book of every stock locate after them, and the counts a
    replay must report (``unknown_refs``: E/C/X/D/U naming a reference never added or
    gone; ``unknown_symbol_adds``: adds for a locate without an R message). Bids sit on
    90..99, asks on 101..110 (× 10000) so the book never crosses; no adds or replaces
    while a stock is halted.
    """
    books = {loc: FifoBook() for loc in range(1, stocks + 1)}
    halted = dict.fromkeys(books, False)
    names = {loc: f"STK{loc}" for loc in books}
    counts = {"unknown_refs": 0, "unknown_symbol_adds": 0}
    ts = 0
    out: list[bytes] = []

    def emit(kind: str, loc: int = 0, **fields: object) -> None:
        nonlocal ts
        ts += int(rng.integers(1, 10_000))
        out.append(itch_message(kind, locate=loc, timestamp=ts, **fields))

    emit("S", event_code="O")
    for loc, name in names.items():
        emit("R", loc, stock=name, market_category="Q", round_lot_size=100)
    for loc, name in names.items():
        emit("H", loc, stock=name, trading_state="T")
    next_ref = 1
    noise = "SYLVWKJhPQBINO"
    for _ in range(steps):
        loc = int(rng.integers(1, stocks + 1))
        book = books[loc]
        live = list(book.where)
        roll = rng.random()
        if roll < 0.03:
            halted[loc] = not halted[loc]
            emit("H", loc, stock=names[loc], trading_state="H" if halted[loc] else "T")
        elif not halted[loc] and (roll < 0.35 or not live):
            side = int(rng.integers(0, 2))
            price = int(rng.integers(90, 100) if side == 0 else rng.integers(101, 111)) * 10000
            shares = int(rng.integers(1, 500))
            fields = {
                "order_reference_number": next_ref,
                "buy_sell_indicator": "B" if side == 0 else "S",
                "shares": shares,
                "stock": names[loc],
                "price": price,
            }
            if rng.random() < 0.5:
                emit("A", loc, **fields)
            else:
                emit("F", loc, attribution="MPID", **fields)
            book.add(next_ref, side, price, shares)
            next_ref += 1
        elif roll < 0.40:
            kind = "EXDU"[int(rng.integers(0, 4))]
            ghost = 10**9 + int(rng.integers(0, 10**6))
            counts["unknown_refs"] += 1
            if kind == "U":
                emit(
                    "U",
                    loc,
                    original_order_reference_number=ghost,
                    new_order_reference_number=next_ref,
                    shares=5,
                    price=950000,
                )
                next_ref += 1
            elif kind == "D":
                emit("D", loc, order_reference_number=ghost)
            else:
                emit(kind, loc, order_reference_number=ghost, **{
                    "E": {"executed_shares": 1}, "X": {"cancelled_shares": 1}
                }[kind])  # fmt: skip
        elif roll < 0.42:
            emit("A", 999, order_reference_number=next_ref, shares=1, price=10000)
            counts["unknown_symbol_adds"] += 1
            next_ref += 1
        elif roll < 0.50:
            emit(noise[int(rng.integers(0, len(noise)))], loc)
        elif not live:
            emit("N", loc, stock=names[loc])
        else:
            ref = live[int(rng.integers(0, len(live)))]
            side, price = book.where[ref]
            open_qty = book.open_qty(ref)
            kind = "ECXDU"[int(rng.integers(0, 5))]
            if kind == "U" and halted[loc]:
                kind = "D"
            if kind in "ECX":
                qty = int(rng.integers(1, open_qty + 1))
                if kind == "E":
                    emit("E", loc, order_reference_number=ref, executed_shares=qty,
                         match_number=ts)  # fmt: skip
                elif kind == "C":
                    emit("C", loc, order_reference_number=ref, executed_shares=qty,
                         match_number=ts, printable="Y", execution_price=price + 100)  # fmt: skip
                else:
                    emit("X", loc, order_reference_number=ref, cancelled_shares=qty)
                book.reduce(ref, qty)
            elif kind == "D":
                emit("D", loc, order_reference_number=ref)
                book.reduce(ref, open_qty)
            else:
                new_price = price + 10000 * int(rng.integers(-2, 3))
                new_price = (
                    min(max(new_price, 900000), 990000)
                    if side == 0
                    else min(max(new_price, 1010000), 1100000)
                )
                shares = int(rng.integers(1, 500))
                emit("U", loc, original_order_reference_number=ref,
                     new_order_reference_number=next_ref, shares=shares,
                     price=new_price)  # fmt: skip
                book.reduce(ref, open_qty)
                book.add(next_ref, side, new_price, shares)
                next_ref += 1
    emit("S", event_code="C")
    return out, books, counts


# --- inputs that are not regular files -------------------------------------------------------


@contextmanager
def fifo_feeding(path: Path, data: bytes, writes: int = 7) -> Iterator[Path]:
    """A FIFO at ``path`` that a writer thread fills with ``data`` (in ``writes`` pieces)
    once a reader opens it, then closes. On leaving, a writer that never met a reader is
    met once (the FIFO is opened for reading and closed: its writes then fail, which ends
    it) and the thread is joined."""
    os.mkfifo(path)
    opened = threading.Event()

    def write() -> None:
        try:
            with open(path, "wb") as fifo:  # blocks until a reader opens the FIFO
                opened.set()
                step = max(1, -(-len(data) // writes))
                for at in range(0, len(data), step):
                    fifo.write(data[at : at + step])
                    fifo.flush()
        except BrokenPipeError:
            pass  # the reader stopped early (refused or failed input): nothing more to give

    writer = threading.Thread(target=write, name="fifo-writer", daemon=True)
    writer.start()
    try:
        yield path
    finally:
        if not opened.is_set():
            os.close(os.open(path, os.O_RDONLY))  # returns once the writer has opened too
        writer.join()
