"""Open a market-data input as a byte stream: a file, a gzip file, a pipe, a FIFO or stdin.

Real ITCH days ship gzipped and users stream them (``zcat day.gz |``, ``<(zcat ...)``, a
FIFO, ``-`` for stdin). A reader that memory-maps a file, or sizes it with ``fstat``, sees
0 bytes of a pipe and reports an empty feed; a reader that opens its input twice hangs on
a FIFO whose writer has gone. So every feed reader opens its input once, here:

* a regular file is read as it is, or decompressed on the fly when it starts with the gzip
  magic bytes (``1f 8b``; the name does not matter);
* a pipe, FIFO, socket or ``-`` (stdin) is read sequentially, once, and decompressed on the
  fly the same way; opening a FIFO waits for its writer, as ``cat`` does;
* anything else is refused with ``FeedInputError`` before a byte is read: a directory, a
  terminal, a character or block device (``/dev/zero`` never ends, ``/dev/null`` is not a
  feed).

Decompression is streamed (``gzip`` of the standard library, read in chunks), never a whole
file in memory. A damaged gzip stream raises ``CompressedDataError`` with the offset in the
decompressed data where it was noticed, so the feed readers can report it like any other
damage.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import sys
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

#: The first two bytes of every gzip member (RFC 1952).
GZIP_MAGIC = b"\x1f\x8b"
#: The file name that means standard input.
STDIN = "-"

_DEVICE_KINDS = {
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


class FeedInputError(ValueError):
    """``path`` cannot be read as a feed (a directory, a device, a terminal): ``problem``."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class CompressedDataError(ValueError):
    """The gzip stream of ``path`` is damaged; ``offset`` counts decompressed bytes."""

    def __init__(self, path: str, offset: int, problem: str) -> None:
        self.path = path
        self.offset = offset
        self.problem = problem
        super().__init__(f"{path}: {problem} (after {offset} decompressed bytes)")


@dataclass
class FeedSource:
    """An opened feed input. ``stream`` yields its (decompressed) bytes; read it with
    ``read_into``. ``mappable`` is true for an uncompressed regular file of known size, the
    one kind a reader may memory-map through ``fd`` instead; ``rewindable`` is true when
    the input can be opened again (a regular file, compressed or not)."""

    name: str
    stream: BinaryIO
    compressed: bool
    mappable: bool
    rewindable: bool
    fd: int
    size: int  # bytes of a mappable file, else -1
    offset: int = 0  # decompressed bytes handed out so far by ``read_into``

    def read_into(self, buf: memoryview) -> int:
        """Fill ``buf`` as far as the input goes; returns the bytes read (< len at the end).

        Raises ``CompressedDataError`` when a gzip stream is damaged or cut short.
        """
        total = 0
        want = len(buf)
        # one underlying read per call: a gzip error then loses nothing read before it
        readinto = getattr(self.stream, "readinto1", self.stream.readinto)
        try:
            while total < want:
                n = readinto(buf[total:])
                if not n:
                    break
                total += n
        except (gzip.BadGzipFile, EOFError, zlib.error) as error:
            raise CompressedDataError(
                self.name, self.offset + total, f"damaged gzip data: {error}"
            ) from None
        self.offset += total
        return total


def kind_of(mode: int) -> str | None:
    """Why a file of this ``st_mode`` cannot be a feed, or None when it can be read."""
    if stat.S_ISREG(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory; expected a feed file"
    kind = _DEVICE_KINDS.get(stat.S_IFMT(mode), "not a regular file")
    return f"is {kind}, not a feed file or pipe (a device never ends or holds no feed)"


def is_rewindable(path: str | Path) -> bool:
    """True when ``path`` is a regular file: it can be read again from the start."""
    if str(path) == STDIN:
        return False
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _refuse_unreadable(name: str, fd: int) -> os.stat_result:
    info = os.fstat(fd)
    if os.isatty(fd):
        raise FeedInputError(name, "is a terminal; give a file, or pipe the feed in")
    problem = kind_of(info.st_mode)
    if problem is not None:
        raise FeedInputError(name, problem)
    return info


class _Prefixed(io.RawIOBase):
    """A raw stream that yields ``head`` first, then the rest of ``tail``."""

    def __init__(self, head: bytes, tail: BinaryIO) -> None:
        self._head = head
        self._tail = tail

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(buf), len(self._head))
            buf[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        return self._tail.readinto(buf)


def _read_head(stream: BinaryIO, n: int) -> bytes:
    head = b""
    while len(head) < n:
        more = stream.read(n - len(head))
        if not more:
            break
        head += more
    return head


@contextmanager
def open_feed(path: str | Path):
    """Open ``path`` (``-`` for stdin) as a ``FeedSource``; close it on leaving.

    Raises ``FeedInputError`` for an input that is not a file or a pipe, ``OSError`` for
    one that cannot be opened (missing, no permission).
    """
    name = str(path)
    if name == STDIN:
        raw = sys.stdin.buffer
        try:
            fd = raw.fileno()
        except (AttributeError, OSError, io.UnsupportedOperation):
            fd = -1
        if fd >= 0:
            _refuse_unreadable("standard input", fd)
        owned = None
        name = "standard input"
    else:
        info = os.stat(path)  # refuse before open(): opening a FIFO waits for a writer
        if stat.S_ISDIR(info.st_mode):
            raise FeedInputError(name, "is a directory; expected a feed file")
        raw = owned = open(path, "rb", buffering=0)  # noqa: SIM115 - closed below
        fd = raw.fileno()
    try:
        info = _refuse_unreadable(name, fd) if owned is not None else None
        regular = info is not None and stat.S_ISREG(info.st_mode)
        if regular and info.st_size > 0:
            head = os.pread(fd, 2, 0)
            if head != GZIP_MAGIC:
                yield FeedSource(name, raw, False, True, True, fd, info.st_size)
                return
            stream: BinaryIO = gzip.GzipFile(fileobj=raw, mode="rb")
            yield FeedSource(name, stream, True, False, True, fd, -1)
            return
        # a pipe, stdin, or a regular file that says it is empty (``/proc`` files do)
        head = _read_head(raw, 2)
        buffered = io.BufferedReader(_Prefixed(head, raw), 1 << 20)
        compressed = head == GZIP_MAGIC
        stream = gzip.GzipFile(fileobj=buffered, mode="rb") if compressed else buffered
        yield FeedSource(name, stream, compressed, False, regular, fd, -1)
    finally:
        if owned is not None:
            owned.close()
