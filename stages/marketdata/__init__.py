"""Market data: matching's events as per-symbol depth, trades and BBO messages, and the
client-side book that applies them in sequence (see docs/market_data.md).

Pure domain code (no sockets): the output stage's publisher feeds ``DepthBuilder`` the
batches it releases and sends each message under ``topic(symbol)``; a subscriber keeps one
``LocalBook`` per symbol.
"""

from .builder import DepthBuilder, InconsistentEvents
from .local_book import Applied, LocalBook
from .messages import (
    BBO,
    TOPIC_PREFIX,
    UPDATES,
    Depth,
    Level,
    LevelUpdate,
    Message,
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

__all__ = [
    "BBO",
    "TOPIC_PREFIX",
    "UPDATES",
    "Applied",
    "Depth",
    "DepthBuilder",
    "InconsistentEvents",
    "Level",
    "LevelUpdate",
    "LocalBook",
    "Message",
    "Snapshot",
    "Status",
    "TradeTick",
    "Trades",
    "decode",
    "decode_json",
    "encode",
    "encode_json",
    "topic",
]
