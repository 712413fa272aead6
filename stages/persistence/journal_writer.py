"""The single writer of a journal: appends contiguous batches, fsyncs them by its policy.

Invariants: one writer per journal directory (it holds the writer lock for its whole life);
the writer never rewrites accepted data, it only appends and, on opening, cuts off a torn
tail; every append continues the journal (``seq`` from ``next_seq`` on) and goes whole into
one segment; nothing is reported durable (``durable_seq``) before the policy's fsync made it
so. A failed write leaves no half append behind; a full disk leaves the journal valid up to
the last whole append and the writer closed (:class:`JournalFullError`); a failed fsync
closes the writer, since the page cache state is then unknown.

``append`` is the hot path: a compiled contiguity check of the ``seq`` column, then one
``os.writev`` of (block header, the array's own buffer) per block; no copy, no per-record
Python.
"""

from __future__ import annotations

import contextlib
import errno
import os
import struct
import time
from pathlib import Path

import crc32c
import numpy as np

from stages.persistence.durable import FULL_DISK_ERRNOS, create_directory, fsync_dir
from stages.persistence.journal_blocks import (
    TornAppend,
    TornTail,
    check_torn_segment,
    cut_torn_tail,
    drop_torn_segment,
    first_gap,
    scan_blocks,
)
from stages.persistence.journal_durability import (
    DEFAULT_FSYNC_INTERVAL_MS,
    DurableMark,
    FsyncPolicy,
    read_durable_mark,
)
from stages.persistence.journal_errors import (
    JournalError,
    JournalFullError,
    JournalLayoutError,
    JournalLostRecordsError,
    access_error,
    refusal,
)
from stages.persistence.journal_lock import lock_journal
from stages.persistence.journal_segments import (
    BLOCK_CONTINUES,
    BLOCK_HEADER,
    BLOCK_MAGIC,
    MAX_BLOCK_BYTES,
    ShortHeader,
    build_file_header,
    check_layout,
    check_record_dtype,
    describe_layout_difference,
    list_segments,
    read_header_of,
    segment_name,
)

DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024

#: The write and sync calls, module attributes so fault tests can inject ENOSPC or EIO.
_writev = os.writev
_fdatasync = os.fdatasync


class JournalWriter:
    """The single writer of a journal directory: appends verified-contiguous batches.

    Opening a directory that already holds a journal continues it: the layout must match, the
    last segment is verified and a torn tail is truncated (with a :class:`TornTailWarning`);
    the next append must start at ``next_seq``.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        dtype: np.dtype,
        *,
        fsync: FsyncPolicy | str = FsyncPolicy.BATCH,
        fsync_interval_ms: float = DEFAULT_FSYNC_INTERVAL_MS,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        first_seq: int = 1,
        max_block_bytes: int = MAX_BLOCK_BYTES,
    ) -> None:
        self.directory = Path(directory).expanduser()
        self.dtype = check_record_dtype(dtype)
        try:
            self.fsync = FsyncPolicy(fsync)
        except ValueError:
            raise ValueError(
                f"journal fsync policy {fsync!r} is unknown; use one of "
                f"{', '.join(p.value for p in FsyncPolicy)}"
            ) from None
        if fsync_interval_ms <= 0:
            raise ValueError(f"journal fsync_interval_ms={fsync_interval_ms} must be > 0")
        self._segment_header_size = len(build_file_header(self.dtype, 0))
        minimum = self._segment_header_size + BLOCK_HEADER.size + self.dtype.itemsize
        if segment_bytes < minimum:
            raise ValueError(
                f"journal segment_bytes={segment_bytes} is too small: at least {minimum} "
                "(header + one block of one record) is needed"
            )
        self.segment_bytes = segment_bytes
        self._interval_ns = int(fsync_interval_ms * 1e6)
        self._record_size = self.dtype.itemsize
        if not BLOCK_HEADER.size + self._record_size <= max_block_bytes <= MAX_BLOCK_BYTES:
            raise ValueError(
                f"journal max_block_bytes={max_block_bytes} must hold one record and be at "
                f"most {MAX_BLOCK_BYTES}"
            )
        self._max_block_records = (max_block_bytes - BLOCK_HEADER.size) // self._record_size
        self._fd = -1
        self._lock_fd = -1
        self._failed: str | None = None
        self.repairs: list[TornTail] = []
        self._path = self.directory
        self._synced_seq = first_seq - 1
        self._last_sync_ns = time.monotonic_ns()
        create_directory(
            self.directory,
            named="journal",
            kind="journal",
            doing="creating the directory",
            error=refusal,
        )
        self._lock_fd = lock_journal(self.directory, "a journal writer")
        try:
            for stale in self.directory.glob(".*.tpj.tmp"):
                stale.unlink()  # a segment whose creation was cut off before its rename
            segments = list_segments(self.directory)
            if segments:
                self._open_existing(segments)
                self._refuse_lost_records(self._next_seq - 1, self._path)
            else:
                self._refuse_lost_records(first_seq - 1, None)
                if first_seq < 0:
                    raise ValueError(f"journal first_seq={first_seq} must be >= 0")
                self._next_seq = first_seq
                self._create_segment(first_seq)
                fsync_dir(self.directory)
            self._synced_seq = self._next_seq - 1
            if not segments:
                self._write_mark()
        except OSError as exc:
            self.close_quietly()  # release the lock: this writer never came to be
            raise access_error(exc, exc.filename or self.directory, "opening it") from None
        except BaseException:
            self.close_quietly()
            raise
        self._last_sync_ns = time.monotonic_ns()

    # -- state ---------------------------------------------------------------------------------

    @property
    def next_seq(self) -> int:
        """The sequence the next appended record must carry."""
        return self._next_seq

    @property
    def written_seq(self) -> int:
        """The highest sequence handed to the OS (survives a process crash)."""
        return self._next_seq - 1

    @property
    def synced_seq(self) -> int:
        """The highest sequence forced to stable storage by fsync (survives a power loss)."""
        return self._synced_seq

    @property
    def durable_seq(self) -> int:
        """The highest sequence durable under the configured policy: what may be acknowledged.

        ``batch`` and ``interval``: fsynced. ``never``: written, which survives the crash of
        any process but not of the machine; that is the promise of that policy.
        """
        return self.written_seq if self.fsync is FsyncPolicy.NEVER else self._synced_seq

    # -- opening ---------------------------------------------------------------------------------

    def _refuse_lost_records(self, end: int, newest: Path | None) -> None:
        """Refuse to append after records the durable mark proves were lost (a deleted
        newest segment): new records would reuse their seqs and the loss would be hidden."""
        mark = read_durable_mark(self.directory)
        newest_first = int(newest.name[:20]) if newest is not None else None
        missing = (
            mark.missing_after(end, newest_first, proven_only=True) if mark is not None else None
        )
        if missing is not None:
            raise JournalLostRecordsError(
                f"journal {self.directory} cannot be appended to: {missing.describe()}; "
                "restore the missing segment, or move the journal aside and start a new one",
                missing,
            )

    def _open_existing(self, segments: list[Path]) -> None:
        last = segments[-1]
        size = last.stat().st_size
        try:
            header = read_header_of(last)
        except ShortHeader:
            check_torn_segment(last, size, self._record_size)
            self.repairs.append(drop_torn_segment(last, size, repair=True, locked=True))
            segments = segments[:-1]
            if not segments:  # the first segment's creation was cut off: start it again
                self._next_seq = int(last.name[:20])
                self._create_segment(self._next_seq)
                fsync_dir(self.directory)
                return
            last = segments[-1]
            size = last.stat().st_size
            header = read_header_of(last)
        check_layout(header, self.dtype)
        next_seq = header.first_seq
        with open(last, "rb") as f:
            try:
                for _offset, first, count, _records in scan_blocks(f, header, size, is_last=True):
                    next_seq = first + count
            except TornAppend as torn:
                self.repairs.append(cut_torn_tail(last, torn, repair=True, locked=True))
                next_seq = torn.seq
        self._next_seq = next_seq
        self._path = last
        self._fd = os.open(last, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        self._offset = os.fstat(self._fd).st_size

    def _create_segment(self, first_seq: int) -> None:
        """Write a new segment's header under a temporary name, fsync it, then rename it."""
        path = self.directory / segment_name(first_seq)
        tmp = self.directory / f".{path.name}.tmp"
        header = build_file_header(self.dtype, first_seq)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            self._fail_write(exc, f"creating segment {path}")
        try:
            done = 0
            while done < len(header):
                done += _writev(fd, [header[done:]])
            if self.fsync is not FsyncPolicy.NEVER:
                _fdatasync(fd)
        except OSError as exc:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            self._fail_write(exc, f"creating segment {path}")
        os.close(fd)
        try:
            os.rename(tmp, path)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            self._fail_write(exc, f"creating segment {path}")
        self._fd = fd
        self._path = path
        self._offset = len(header)

    def _rotate(self) -> None:
        if self.fsync is not FsyncPolicy.NEVER:
            self._sync_fd()
        os.close(self._fd)
        self._fd = -1
        self._create_segment(self._next_seq)
        self._write_mark()  # the directory fsync below makes its rename durable too
        if self.fsync is not FsyncPolicy.NEVER:
            try:
                fsync_dir(self.directory)
            except OSError as exc:
                self._fail_write(exc, f"syncing directory {self.directory}")

    def _write_mark(self) -> None:
        """Record how far the journal is durable and its newest segment (``durable.mark``).

        Only at creation, rotation and close, never per append: a sound journal never ends
        before the mark, so ``verify_journal`` can tell a deleted newest segment from a
        short journal. A failure to write it is not a journal failure (it is a cross-check).
        """
        mark = DurableMark(self.durable_seq, int(self._path.name[:20]), self.fsync.value)
        with contextlib.suppress(OSError):
            mark.write(
                self.directory, sync=self.fsync is not FsyncPolicy.NEVER, fdatasync=_fdatasync
            )

    # -- appending -------------------------------------------------------------------------------

    def append(self, batch: np.ndarray) -> int:
        """Append a batch whose ``seq`` runs from ``next_seq`` on; return the last seq written.

        Hot path: one compiled contiguity check, then one ``writev`` of (block header, the
        array's own buffer) per block, no copy of the records and no per-record Python work;
        then the fsync policy. Must not be given a batch it has to convert per record.

        The batch is one append: it goes whole into one segment (rotating first if it does
        not fit, so a segment exceeds ``segment_bytes`` only when one append does) and
        readers yield it whole, so a replay sees the batches that were written.
        """
        if self._failed is not None:
            raise JournalError(f"journal {self.directory} is closed for writing: {self._failed}")
        n = len(batch)
        if n == 0:
            return self.written_seq
        if batch.dtype != self.dtype:
            raise JournalLayoutError(
                f"journal {self.directory}: batch has another record layout: "
                f"{describe_layout_difference(batch.dtype, self.dtype)}"
            )
        seqs = batch["seq"]
        first = self._next_seq
        gap = first_gap(seqs, first)
        if gap >= 0:
            raise ValueError(
                f"journal {self.directory}: batch seqs {int(seqs[0])}..{int(seqs[-1])} "
                f"(n={n}) are not contiguous from the expected next seq {first}: record {gap} "
                f"has seq {int(seqs[gap])}, {first + gap} expected"
            )
        if not batch.flags.c_contiguous:
            batch = np.ascontiguousarray(batch)
        raw = batch.view(np.uint8)
        rs = self._record_size
        blocks = -(-n // self._max_block_records)
        size = n * rs + blocks * BLOCK_HEADER.size
        if self._offset > self._segment_header_size and self._offset + size > self.segment_bytes:
            self._rotate()  # appends never span segments: a torn append stays in one file
        start = self._offset
        done = 0
        while done < n:
            k = min(n - done, self._max_block_records)
            flags = BLOCK_CONTINUES if done + k < n else 0
            self._write_block(first + done, k, raw[done * rs : (done + k) * rs], flags, start)
            done += k
        self._next_seq = first + n
        if self.fsync is FsyncPolicy.BATCH:
            self._sync_fd()
        elif self.fsync is FsyncPolicy.INTERVAL:
            self.maybe_sync()
        return self._next_seq - 1

    def _write_block(
        self, first_seq: int, count: int, payload: np.ndarray, flags: int, append_start: int
    ) -> None:
        length = BLOCK_HEADER.size + payload.nbytes
        head = struct.pack(
            "<IIIIqI", BLOCK_MAGIC, length, count, crc32c.crc32c(payload), first_seq, flags
        )
        head += struct.pack("<I", crc32c.crc32c(head))
        written = 0
        try:
            written = _writev(self._fd, [head, payload])
            while written < length:  # a short write: finish the block
                if written < len(head):
                    written += _writev(self._fd, [head[written:], payload])
                else:
                    written += _writev(self._fd, [payload[written - len(head) :]])
        except OSError as exc:
            if written or self._offset > append_start:
                # never leave half an append behind
                os.ftruncate(self._fd, append_start)
                self._offset = append_start
            self._fail_write(exc, f"writing seqs {first_seq}..{first_seq + count - 1}")
        self._offset += length

    def _fail_write(self, exc: OSError, what: str) -> None:
        valid = self._next_seq - 1
        if exc.errno in FULL_DISK_ERRNOS and self.fsync is not FsyncPolicy.NEVER and self._fd >= 0:
            with contextlib.suppress(OSError, JournalError):  # make what was accepted durable
                self._sync_fd()
        where = f"to {self._path} at offset {self._offset}" if self._fd >= 0 else ""
        self._failed = f"{what} failed: {exc.strerror or exc}"
        self.close_quietly()
        if exc.errno in FULL_DISK_ERRNOS:
            raise JournalFullError(
                f"journal {self.directory}: disk full ({errno.errorcode.get(exc.errno, exc.errno)}) "
                f"{what} {where}; the journal is kept, valid up to seq {valid} (fsynced up to "
                f"{self._synced_seq}) and closed for writing: free space on its file system; "
                f"'tradepipe journal verify {self.directory}' shows what it holds",
                valid,
                self._synced_seq,
            ) from exc
        raise access_error(
            exc,
            self.directory,
            f"{what} {where}".strip()
            + f" (the journal is kept, valid up to seq {valid}, and closed for writing)",
        ) from exc

    # -- durability ----------------------------------------------------------------------------

    def _sync_fd(self) -> None:
        target = self._next_seq - 1
        if target <= self._synced_seq:
            self._last_sync_ns = time.monotonic_ns()
            return
        try:
            _fdatasync(self._fd)
        except OSError as exc:
            # after a failed fsync the page cache state is unknown: stop accepting writes
            self._failed = f"fsync failed: {exc}"
            self.close_quietly()
            raise JournalError(
                f"journal {self.directory}: fsync of {self._path} failed ({exc}); writes "
                f"after seq {self._synced_seq} may not be durable and the journal is closed "
                f"for writing; 'tradepipe journal verify {self.directory}' shows what it holds"
            ) from exc
        self._synced_seq = target
        self._last_sync_ns = time.monotonic_ns()

    def sync(self) -> int:
        """Force everything written to stable storage now; return ``durable_seq``."""
        if self._failed is None and self._fd >= 0:
            self._sync_fd()
        return self.durable_seq

    def maybe_sync(self) -> int:
        """Under the ``interval`` policy, sync if the interval has passed; call it when idle."""
        if (
            self.fsync is FsyncPolicy.INTERVAL
            and self._fd >= 0
            and time.monotonic_ns() - self._last_sync_ns >= self._interval_ns
        ):
            self._sync_fd()
        return self.durable_seq

    # -- closing -------------------------------------------------------------------------------

    def close(self) -> None:
        """Sync (unless the policy is ``never``), record the durable mark, close the segment."""
        if self._fd >= 0 and self._failed is None:
            if self.fsync is not FsyncPolicy.NEVER:
                self._sync_fd()
            self._write_mark()
            if self.fsync is not FsyncPolicy.NEVER:
                with contextlib.suppress(OSError):
                    fsync_dir(self.directory)
        self.close_quietly()

    def close_quietly(self) -> None:
        """Close the file and release the lock without syncing (after a failure)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> JournalWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
