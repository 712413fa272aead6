"""The matching stage process: checked commands in, the books' events out.

Consumer ``matching`` of the checked ring (what risk passed, refused commands included:
matching answers those with their REJECTED), producer of the events ring. Per batch view
one ``MatchingEngine.process`` call and one ``publish_batch`` (claim, byte copy, publish);
the batch is released on the checked ring only after its events are published, so a reader
``after`` matching on the checked ring (risk, for settlement) knows every event of what it
sees is already in the events ring.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ringbuffer import Ring, wait_strategy
from stages.engine import EngineConfig
from stages.loop import ControlChannel, StageLoop, StageResult, Views, ring_positions
from stages.matching.engine import MatchingEngine
from stages.records import COMMAND_DTYPE, EVENT_DTYPE
from stages.restart import RestartPoint

CONSUMER = "matching"


class MatchingStageConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    engine: EngineConfig = msgspec.field(default_factory=EngineConfig)
    wait: str = "backoff"


def run(
    checked_ring: str,
    events_ring: str,
    config: MatchingStageConfig | None = None,
    control: ControlChannel | None = None,
    restart: RestartPoint | None = None,
) -> StageResult:
    """Run the matching stage; ``details``: ``matching_hash``, ``events``, ``open_orders``.

    After a ``restart`` the books are those of the restart point's state."""
    config = config if config is not None else MatchingStageConfig()
    engine = config.engine
    if restart is not None:
        matching = restart.engine().matching
    else:
        matching = MatchingEngine(
            engine.symbol_specs(),
            order_capacity=engine.matching_order_capacity,
            emit_book_top=engine.emit_book_top,
        )
    checked = Ring.attach(checked_ring, COMMAND_DTYPE)
    events = Ring.attach(events_ring, EVENT_DTYPE)
    try:
        commands_in = checked.consumer(CONSUMER, wait_strategy(config.wait))
        events_out = events.producer(wait_strategy(config.wait))
        published = [0]

        def handle(views: Views) -> None:
            """Hot: one compiled pass and one publish per view, nothing per command."""
            for view in views:
                answers = matching.process(view)
                events_out.publish_batch(answers)
                published[0] += len(answers)

        def status() -> dict[str, Any]:
            return {
                "events": published[0],
                "open_orders": matching.open_orders(),
                "rings": ring_positions({"checked": checked, "events": events}),
            }

        loop = StageLoop(commands_in, handle, [events_out], control=control, status=status)
        stopped_by = loop.run()
        details = {
            "matching_hash": matching.state_hash(),
            "events": published[0],
            "open_orders": matching.open_orders(),
        }
        commands_in.close()
        events_out.close()
        return StageResult("matching", loop.counters, stopped_by, details)
    finally:
        checked.close()
        events.close()
