"""The pipeline's wiring as data: ring names, capacities, consumers and their barriers."""

from __future__ import annotations

import pytest

from pipeline.config import LoadConfig, RunConfig
from pipeline.topology import CHECKED, COMMANDS, EVENTS, STAGES, Topology
from ringbuffer import Ring, list_segments
from stages.records import COMMAND_DTYPE, EVENT_DTYPE


@pytest.mark.timeout(30)
def test_creates_the_three_rings_with_their_barriers_and_unlinks_them():
    topology = Topology(RunConfig(load=LoadConfig(batch=8192)), tag="topo")
    with topology:
        names = topology.names
        assert set(names) == {COMMANDS, CHECKED, EVENTS}
        commands = Ring.attach(names[COMMANDS], COMMAND_DTYPE)
        events = Ring.attach(names[EVENTS], EVENT_DTYPE)
        try:
            assert commands.consumer_names == ("persistence", "risk", "output")
            assert commands.capacity >= 4 * 8192  # room for a few batches
            assert events.consumer_names == ("risk", "output")
            assert events.capacity > commands.capacity  # a command has several events
        finally:
            commands.close()
            events.close()
        plans = {plan.role: plan for plan in topology.plans()}
        assert {spec.name: spec.after for spec in plans[COMMANDS].consumers}["output"] == (
            "persistence",
        )
        assert {spec.name: spec.after for spec in plans[CHECKED].consumers} == {
            "matching": (),
            "risk": ("matching",),
        }
        calls = topology.stage_calls()
        assert tuple(calls) == STAGES
        assert calls["risk"].kwargs["checked_ring"] == names[CHECKED]
        assert calls["output"].kwargs["commands_ring"] == names[COMMANDS]
    current = {info.name for info in list_segments()}
    assert not set(names.values()) & current


@pytest.mark.timeout(30)
def test_stage_calls_need_the_rings():
    with pytest.raises(RuntimeError, match="create"):
        Topology(RunConfig()).stage_calls()
