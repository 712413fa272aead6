"""The order-entry gateway's domain core: the client protocol, sessions, reports.

Pure code (no sockets, no processes): ``protocol`` (the messages), ``codec`` (frames to
messages, msgpack or JSON, never a crash), ``symbols`` (names, fees), ``orders`` (order ids
and client order ids), ``commands`` (requests as command records), ``reports`` (events as
execution reports, the report log) and ``sessions`` (``Gateway``: the state and decisions).
The process that binds the ROUTER socket drives a ``Gateway``; ``docs/gateway.md`` is the
protocol's reference.
"""

from stages.gateway.codec import MAX_FRAME, Codec, ProtocolError, sniff
from stages.gateway.sessions import Gateway, Outgoing, Step
from stages.gateway.symbols import SymbolInfo, SymbolTable

__all__ = [
    "MAX_FRAME",
    "Codec",
    "Gateway",
    "Outgoing",
    "ProtocolError",
    "Step",
    "SymbolInfo",
    "SymbolTable",
    "sniff",
]
