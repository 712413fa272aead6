"""The gateway's order-id log: what a restarted gateway needs that the journal cannot hold.

A command record (``COMMAND_DTYPE``) has no room for the client's order id, so after a
restart the engine's state says which order ids rest and the journal which were sent, but
not which client order id each was, nor how far each account's report sequence went. This
file keeps both, next to the journal (``ID_LOG_NAME`` in its directory: durable with it):

* an ``ORDER`` record for every NEW the gateway sends (order id, account, symbol, side, the
  NEW's quantity and the client order id as at most ``MAX_CLIENT_ORDER_ID`` UTF-8 bytes);
* a ``REPORTS`` record of an account's last report seq, whenever it grew;
* an ``APPLIED`` record of how far the released answers the gateway took went (the seq of
  the last one and how many answers of that seq): after a restart the answers sent again
  up to there are not reported again, those after are (output's own count of what it
  released is a guess for the gateway: it may have sent a batch the gateway never took,
  or the gateway may have taken one output had not counted yet).

**Order of writes.** ``flush()`` writes everything noted since the last one with one
``write`` (one per gateway round, however many orders it took). The process flushes before
it publishes the round's records into the orders ring, so every order the engine can see
is in the log; and before it sends the round's reports, so a client never saw a report seq
the log does not hold (a restarted account continues above it).

**Durability.** With ``fsync`` (the stage sets it unless the journal's policy is
``never``) each flush that wrote something is fsynced before the orders go on: a NEW is
journaled (and fsynced per the journal's policy) only after it left the ring, so its
mapping is durable at least as soon as the command. Without it a kill -9 loses nothing
(the write is in the page cache) but a power cut may lose mappings of durable orders,
which then stay unknown by client order id after a restart (they still trade and show in
market data). The fsync runs only in rounds that sent a NEW or a report (group commit);
an ``APPLIED`` record alone is not fsynced: losing it costs a spurious gap signal.

**Reading.** Fixed-size checksummed records after a header record naming the format: a
torn last record (a kill -9 in the middle of a write) and anything from the first record
whose checksum fails (a zeroed or half-written block after a power cut) are ignored. A missing file or one that is not an id
log reads as ``None``: nothing can be restored by client order id, and the caller says so.

**Size.** One record per NEW: the log grows with the orders sent until the next restart,
which writes a new log (temp file, fsync, rename) holding only the orders still open or in
flight and the accounts' report seqs.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ringbuffer.records import clone_records
from stages.gateway.orders import Order
from stages.gateway.protocol import MAX_CLIENT_ORDER_ID, SIDES

#: the log's file name in the directory the stage is given (the journal's)
ID_LOG_NAME = "gateway-orders.tpg"

HEADER, ORDER, REPORTS, APPLIED = 0, 1, 2, 3
_MAGIC = b"tradepipe gateway order-id log v1"

#: one record: ``value`` is the NEW's qty (``ORDER``), the last report seq (``REPORTS``) or
#: the answers of seq ``order_id`` taken (``APPLIED``)
ID_LOG_DTYPE = np.dtype(
    [
        ("kind", "u1"),
        ("side", "u1"),
        ("symbol", "<u2"),
        ("account", "<u4"),
        ("order_id", "<i8"),
        ("value", "<i8"),
        ("cid_len", "u1"),
        ("pad", "V3"),
        ("crc", "<u4"),  # zlib.crc32 of the record with this field 0
        ("cid", f"S{MAX_CLIENT_ORDER_ID}"),
    ]
)
assert ID_LOG_DTYPE.itemsize == 96

_SIDE_NAMES = {int(code): name for name, code in SIDES.items()}


@dataclass(frozen=True, slots=True)
class LoggedOrder:
    """An order as its NEW was sent: enough to give it back its client order id."""

    order_id: int
    account: int
    symbol: int
    side: str
    qty: int
    client_order_id: str


@dataclass
class IdLogContents:
    """What a log held: its orders by order id, the accounts' last report seqs, and how
    many bytes at its end were not whole records (ignored)."""

    orders: dict[int, LoggedOrder] = field(default_factory=dict)
    report_seqs: dict[int, int] = field(default_factory=dict)
    ignored_bytes: int = 0
    #: (seq, answers of it) of the last released answer the gateway took; None: unknown
    applied: tuple[int, int] | None = None

    @property
    def highest_order_id(self) -> int:
        return max(self.orders, default=0)


def _header() -> bytes:
    return _record(HEADER, 0, 0, 0, 0, 0, _MAGIC)


def _checksums(records: np.ndarray) -> np.ndarray:
    """Each record's crc32 with its ``crc`` field taken as 0 (for reading a log)."""
    blank = clone_records(records)
    blank["crc"] = 0
    rows = blank.view(np.uint8).reshape(len(blank), ID_LOG_DTYPE.itemsize)
    return np.array([zlib.crc32(row) for row in rows], dtype=np.uint32)


#: an ``ID_LOG_DTYPE`` record as ``struct`` packs it: kind, side, symbol, account, order id,
#: value, cid_len, 3 pad bytes, crc, cid (NUL-padded, as numpy's ``S64``). A record packed
#: and checksummed is ~2 µs; built field by field in numpy, ~13 µs (one a gateway round
#: for the report seqs and one for how far it got, besides one per NEW).
_RECORD = struct.Struct(f"<BBHIqqB3xI{MAX_CLIENT_ORDER_ID}s")
assert _RECORD.size == ID_LOG_DTYPE.itemsize


def _record(
    kind: int, side: int, symbol: int, account: int, order_id: int, value: int, cid: bytes = b""
) -> bytes:
    """One record, its checksum the crc32 of itself with ``crc`` 0 (as ``_checksums``)."""
    return _packed([(kind, side, symbol, account, order_id, value, cid)])


#: where ``crc`` sits in a record (after kind .. cid_len and the pad)
_CRC_OFFSET = ID_LOG_DTYPE.fields["crc"][1]
_CRC = struct.Struct("<I")


def _packed(rows: list[tuple[int, int, int, int, int, int, bytes]]) -> bytes:
    """Records of (kind, side, symbol, account, order_id, value, cid) rows. Hot (a row per
    NEW): each is packed once, with ``crc`` 0, into one buffer, then its checksum (the crc32
    of the record as packed) stored in place."""
    size = _RECORD.size
    out = bytearray(size * len(rows))
    view = memoryview(out)
    pack_into, crc_into, crc32 = _RECORD.pack_into, _CRC.pack_into, zlib.crc32
    for at, (kind, side, symbol, account, order_id, value, cid) in zip(
        range(0, len(out), size), rows, strict=True
    ):
        pack_into(out, at, kind, side, symbol, account, order_id, value, len(cid), 0, cid)
        crc_into(out, at + _CRC_OFFSET, crc32(view[at : at + size]))
    view.release()
    return bytes(out)


def order_records(orders: list[Order]) -> bytes:
    """One ``ORDER`` record per order (the client order id cut at ``MAX_CLIENT_ORDER_ID``
    UTF-8 bytes)."""
    return _packed(
        [
            (ORDER, SIDES[o.side], o.symbol, o.account, o.order_id, o.qty,
             o.client_order_id.encode("utf-8")[:MAX_CLIENT_ORDER_ID])
            for o in orders
        ]
    )  # fmt: skip


def report_records(report_seqs: dict[int, int]) -> bytes:
    """One ``REPORTS`` record per account."""
    return b"".join([_record(REPORTS, 0, 0, a, 0, seq) for a, seq in report_seqs.items()])


def applied_record(applied: tuple[int, int]) -> bytes:
    """The ``APPLIED`` record of (seq, answers of it taken)."""
    return _record(APPLIED, 0, 0, 0, applied[0], applied[1])


def read_id_log(directory: str | os.PathLike[str]) -> IdLogContents | None:
    """The log in ``directory``; None if there is none or the file is not an id log."""
    path = Path(directory) / ID_LOG_NAME
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    size = ID_LOG_DTYPE.itemsize
    whole = len(data) // size
    if whole == 0:
        return None
    records = np.frombuffer(data, dtype=ID_LOG_DTYPE, count=whole)
    head, records = records[:1], records[1:]
    if (
        head["kind"][0] != HEADER
        or bytes(head["cid"][0][: head["cid_len"][0]]) != _MAGIC
        or head["crc"][0] != _checksums(head)[0]
    ):
        return None
    bad = np.flatnonzero(
        (_checksums(records) != records["crc"])
        | ((records["kind"] < ORDER) | (records["kind"] > APPLIED))
    )
    end = int(bad[0]) if len(bad) else len(records)
    contents = IdLogContents(ignored_bytes=len(data) - (1 + end) * size)
    for row in records[:end].tolist():
        kind, side, symbol, account, order_id, value, cid_len, _, _, cid = row
        if kind == ORDER:
            contents.orders[order_id] = LoggedOrder(
                order_id,
                account,
                symbol,
                _SIDE_NAMES.get(side, "buy"),
                value,
                cid[:cid_len].decode("utf-8", "replace"),
            )
        elif kind == REPORTS:
            contents.report_seqs[account] = value
        else:
            contents.applied = (order_id, value)
    return contents


class IdLog:
    """The writer: a new log (``start``), then records noted and written by ``flush``."""

    def __init__(self, path: Path, fd: int, fsync: bool) -> None:
        self.path = path
        self.fsync = fsync
        self._fd = fd
        self._orders: list[Order] = []
        self._report_seqs: dict[int, int] = {}
        self._applied: tuple[int, int] | None = None
        self.counters = {"id_log_writes": 0, "id_log_records": 0}

    @classmethod
    def start(
        cls,
        directory: str | os.PathLike[str],
        *,
        fsync: bool,
        orders: list[Order] = (),  # type: ignore[assignment]
        report_seqs: dict[int, int] | None = None,
        applied: tuple[int, int] | None = None,
    ) -> IdLog:
        """A new log in ``directory`` holding ``orders`` and ``report_seqs`` (what a restored
        gateway still needs), replacing any old one at once (temp file, fsync, rename), so
        a crash while starting leaves the old log or the new, never a mix."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / ID_LOG_NAME
        temp = directory / f".{ID_LOG_NAME}.{os.getpid()}.tmp"
        parts = [_header(), order_records(list(orders)), report_records(report_seqs or {})]
        if applied is not None:
            parts.append(applied_record(applied))
        with open(temp, "wb") as file:
            file.write(b"".join(parts))
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        return cls(path, fd, fsync)

    def add_orders(self, orders: list[Order]) -> None:
        """Note NEWs about to be sent (written by the next ``flush``)."""
        self._orders.extend(orders)

    def note_report_seqs(self, report_seqs: dict[int, int]) -> None:
        """Note accounts' last report seqs (written by the next ``flush``)."""
        self._report_seqs.update(report_seqs)

    def note_applied(self, applied: tuple[int, int] | None) -> None:
        """Note how far the gateway took the released answers (written by the next ``flush``)."""
        if applied is not None:
            self._applied = applied

    @property
    def dirty(self) -> bool:
        return bool(self._orders or self._report_seqs or self._applied)

    def flush(self) -> int:
        """Write what was noted with one ``write`` (fsynced with ``fsync``); records written."""
        if not self.dirty:
            return 0
        parts = []
        if self._orders:
            parts.append(order_records(self._orders))
        if self._report_seqs:
            parts.append(report_records(self._report_seqs))
        sync = self.fsync and bool(parts)  # not for an APPLIED record alone
        if self._applied is not None:
            parts.append(applied_record(self._applied))
        data = b"".join(parts)
        self._orders, self._report_seqs, self._applied = [], {}, None
        view = memoryview(data)
        while view:  # a regular file writes everything at once; a signal may cut it short
            view = view[os.write(self._fd, view) :]
        if sync:
            os.fdatasync(self._fd)
        records = len(data) // ID_LOG_DTYPE.itemsize
        self.counters["id_log_writes"] += 1
        self.counters["id_log_records"] += records
        return records

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
