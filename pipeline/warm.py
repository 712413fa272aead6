"""Imported once by the supervisor's fork server: every stage module and warm kernels.

The supervisor starts its stage processes from a ``multiprocessing`` fork server whose
preload is this module. Importing it imports every stage (numpy, numba, pyzmq, the domain
cores) and runs a tiny ``Engine`` pass and its events through the market-data builder, so numba has
loaded the compiled kernels (validate, throttle, risk, matching, the gateway's order map)
from its cache once, in the server. Each stage process is then a
``fork`` of that server: it starts with all of that in memory, in milliseconds, instead of
a fresh interpreter importing and loading it all again (about 1.5 s of CPU per stage, five
stages at once on a small host). That is what makes a restart after a crash take well
under the time the first start takes (docs/architecture.md §8).

The server is single-threaded when it forks (the supervisor's threads and ZeroMQ contexts
are not in it), so forking it is safe; a stage makes its own ZeroMQ context.
"""

from __future__ import annotations

import pipeline.control
import pipeline.topology
from stages.engine import Engine, EngineConfig
from stages.ingest.synthetic import Stamper, SyntheticFlow
from stages.marketdata.builder import DepthBuilder
from stages.risk.config import AssetConfig, InstrumentConfig, RiskConfig

#: what a stage process needs: its control channel (pyzmq, psutil) and, through the
#: topology, every stage module
PRELOADED = (pipeline.control, pipeline.topology)


def warm_kernels() -> None:
    """One small batch through validate, throttle, risk, matching and settlement, and its
    events through the market-data builder."""
    config = EngineConfig(
        risk=RiskConfig(
            assets=[AssetConfig(0, "USD"), AssetConfig(1, "BTC")],
            instruments=[InstrumentConfig(1, base=1, quote=0, name="BTC-USD")],
            max_accounts=16,
        ),
        matching_order_capacity=1024,
        settle_every=64,
    )
    engine = Engine(config)
    flow = SyntheticFlow([1], accounts=8, seed=1)
    stamper = Stamper()
    engine.process(stamper.stamp(flow.funding([0, 1], 10**9)))
    events = engine.process(stamper.stamp(flow.next(200)))
    DepthBuilder(levels=5).process(events)  # the gateway's market data (compiled order map)
    Engine.restore(engine.snapshot()).state_hash()
    # the matching stage hands its kernel the checked ring's read-only views: a read-only
    # array is another numba type, so another compilation (~16 s of CPU with an empty cache,
    # at a pipeline's first order, in the matching process, while clients wait)
    ring_view = stamper.stamp(flow.next(200))
    ring_view.flags.writeable = False
    engine.matching.process(ring_view)


warm_kernels()
