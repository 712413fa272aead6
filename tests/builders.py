"""Deterministic builders the persistence tests share: command batches and a tiny state machine.

Test modules import from here, never from each other, so a test module can be run, renamed
or removed on its own.
"""

from __future__ import annotations

import struct

import crc32c
import numpy as np

from stages.records import COMMAND_DTYPE, EVENT_DTYPE, CommandType, Side


def commands(first_seq: int, n: int) -> np.ndarray:
    """``n`` command records from ``first_seq``, every field a function of the seq."""
    batch = np.zeros(n, dtype=COMMAND_DTYPE)
    seq = np.arange(first_seq, first_seq + n, dtype=np.int64)
    batch["seq"] = seq
    batch["ts_ingest"] = seq * 1000 + 7
    batch["order_id"] = seq * 3 + 1
    batch["price"] = 10_000 + (seq * 7919) % 200
    batch["qty"] = 1 + seq % 50
    batch["account"] = (seq % 5).astype(np.uint32)
    batch["symbol"] = (seq % 3).astype(np.uint16)
    batch["kind"] = CommandType.NEW
    batch["side"] = (seq % 2).astype(np.uint8) * Side.SELL
    return batch


class Counter:
    """A tiny deterministic state machine: a count and a running crc32c of every record.

    It refuses a batch that does not continue its last seq, so a record applied twice or
    skipped during recovery fails loudly instead of changing a hash subtly.
    """

    def __init__(self, count: int = 0, last_seq: int = 0, crc: int = 0) -> None:
        self.count, self.last_seq, self.crc = count, last_seq, crc

    def process(self, commands: np.ndarray) -> np.ndarray:
        first = int(commands["seq"][0])
        if first != self.last_seq + 1:
            raise AssertionError(f"batch starts at seq {first}, {self.last_seq + 1} expected")
        self.crc = crc32c.crc32c(commands.view(np.uint8), self.crc)
        self.count += len(commands)
        self.last_seq = int(commands["seq"][-1])
        return np.zeros(0, EVENT_DTYPE)

    def snapshot(self) -> bytes:
        return struct.pack("<qqI", self.count, self.last_seq, self.crc)

    @classmethod
    def restore(cls, data: bytes) -> Counter:
        return cls(*struct.unpack("<qqI", data))

    def state_hash(self) -> str:
        return f"{self.count}:{self.last_seq}:{self.crc:08x}"
