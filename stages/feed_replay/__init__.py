"""Replay real market-data days (NASDAQ ITCH 5.0, LOBSTER) into the matching engine.

Users tune the pipeline against real exchange days: the messages that
``stages.ingest.itch50`` and ``stages.ingest.lobster`` decode are translated into
``COMMAND_DTYPE`` batches and driven through ``stages.matching.MatchingEngine``; what
could not be applied is counted, never fatal. This package sits above both (the ingest
decoders know nothing of books, matching nothing of feeds); ``pipeline`` calls it.

One concept per module:

* ``itch_replay``: ITCH messages → commands (``replay_itch``, ``itch_symbols``);
* ``lobster_replay``: LOBSTER messages → commands (``replay_lobster``);
* ``lobster_seeds``: a LOBSTER slice's starting book, from its first orderbook row;
* ``depth``: the top-N levels after every message, kept from the engine's events (the
  rows of ``--book-out``);
* ``tallies``: what is counted: messages the translators skip, what the engine answered;
* ``driver``: the engine and the command batches handed to it.

See ``docs/feeds.md`` for the translation rules.
"""

from stages.feed_replay.driver import ENGINE_BATCH, REPLAY_ACCOUNT
from stages.feed_replay.itch_replay import ItchReplayResult, itch_symbols, replay_itch
from stages.feed_replay.lobster_replay import (
    IOC_ID_BASE,
    LOBSTER_SYMBOL,
    LobsterReplayResult,
    replay_lobster,
)
from stages.feed_replay.lobster_seeds import SEED_ID_BASE
from stages.feed_replay.tallies import EventTally

__all__ = [
    "ENGINE_BATCH",
    "IOC_ID_BASE",
    "LOBSTER_SYMBOL",
    "REPLAY_ACCOUNT",
    "SEED_ID_BASE",
    "EventTally",
    "ItchReplayResult",
    "LobsterReplayResult",
    "itch_symbols",
    "replay_itch",
    "replay_lobster",
]
