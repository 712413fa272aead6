"""Writers of small, spec-conformant ITCH 5.0 and LOBSTER files for the feed tests.

The ITCH writer is deliberately independent of ``stages.ingest.itch50``: it packs messages
with ``struct`` format strings written from the specification's field tables, so a wrong
offset in the parser's dtypes shows up as a test failure instead of agreeing with itself.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
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
