"""Reading a journal: verified numpy batches, one per append, from any sequence.

Invariants: every record a reader yields has passed its block's checksums and the sequence
checks, and batches come in sequence order, each append whole as it was written (trimmed
only to the range asked for). A torn tail ends the iteration with a ``TornTailWarning`` and
yields nothing of the torn append; it is cut off only with ``repair=True``, which takes the
writer lock. Any other fault raises ``JournalCorruptError`` and nothing past it is read.
A reader takes no lock and may read a journal while it is written (the append being written
may then show as a torn tail).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ringbuffer.records import concat_records
from stages.persistence.journal_blocks import (
    TornAppend,
    TornTail,
    check_torn_segment,
    cut_torn_tail,
    drop_torn_segment,
    scan_blocks,
)
from stages.persistence.journal_errors import (
    JournalAccessError,
    JournalCorruptError,
    access_error,
)
from stages.persistence.journal_segments import (
    SegmentHeader,
    ShortHeader,
    check_layout,
    describe_layout_difference,
    list_segments,
    read_header_of,
)


class JournalReader:
    """Reads a journal directory as verified numpy batches, from any sequence.

    Every yielded record has passed its block's crc32c and the sequence checks; a torn tail
    ends the iteration with a :class:`TornTailWarning` (and is cut off if ``repair``); any
    other fault raises :class:`JournalCorruptError`. ``dtype=None`` reads the layout stored
    in the journal; otherwise a journal of another layout raises :class:`JournalLayoutError`.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        dtype: np.dtype | None = None,
        *,
        repair: bool = False,
    ) -> None:
        self.directory = Path(directory).expanduser()
        if not self.directory.exists():
            raise JournalAccessError(
                f"journal directory {self.directory} does not exist", self.directory, errno.ENOENT
            )
        if not self.directory.is_dir():
            raise JournalAccessError(
                f"journal {self.directory} is a file, not a journal directory: name the "
                "directory that holds the segment (*.tpj) files",
                self.directory,
                errno.ENOTDIR,
            )
        self.repair = repair
        self.repairs: list[TornTail] = []

        self._segments: list[SegmentHeader] = []
        try:
            paths = list_segments(self.directory)
        except OSError as exc:
            raise access_error(exc, self.directory, "listing it") from None
        for i, path in enumerate(paths):
            try:
                header = read_header_of(path)
            except OSError as exc:
                raise access_error(exc, path, "reading the segment") from None
            except ShortHeader:
                if i != len(paths) - 1:
                    raise JournalCorruptError(
                        f"journal segment {path} at offset 0: header incomplete but later "
                        "segments exist",
                        path,
                        0,
                        None,
                    ) from None
                size = path.stat().st_size
                known = (
                    dtype
                    if dtype is not None
                    else (self._segments[0].dtype if self._segments else None)
                )
                check_torn_segment(path, size, None if known is None else known.itemsize)
                self.repairs.append(drop_torn_segment(path, size, repair=repair))
                continue
            check_layout(header, dtype)
            if self._segments and header.fingerprint != self._segments[0].fingerprint:
                raise JournalCorruptError(
                    f"journal segment {path} has another record layout than "
                    f"{self._segments[0].path}: "
                    f"{describe_layout_difference(header.dtype, self._segments[0].dtype)}",
                    path,
                    24,
                    header.first_seq,
                )
            self._segments.append(header)
        self.dtype = self._segments[0].dtype if self._segments else dtype
        #: The last valid seq of the journal, known once an iteration has reached its end
        #: (``first_seq - 1`` for a journal without records; None before that).
        self.last_seq: int | None = None

    def close(self) -> None:
        """Nothing to release: files are open only while a batch iteration runs."""

    def __enter__(self) -> JournalReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def first_seq(self) -> int | None:
        """The first sequence the journal holds (None for an empty directory)."""
        return self._segments[0].first_seq if self._segments else None

    @property
    def segments(self) -> list[SegmentHeader]:
        return list(self._segments)

    def batches(
        self, from_seq: int | None = None, to_seq: int | None = None
    ) -> Iterator[np.ndarray]:
        """Yield verified batches (one per block, trimmed to ``from_seq..to_seq`` inclusive)."""
        start = 0
        if from_seq is not None:
            for i, header in enumerate(self._segments):
                if header.first_seq <= from_seq:
                    start = i
        for _path, _offset, records in self._blocks(start, from_seq):
            if records is None:
                continue
            first = int(records["seq"][0])
            lo = 0 if from_seq is None or from_seq <= first else from_seq - first
            hi = len(records)
            if to_seq is not None:
                if first > to_seq:
                    return
                hi = min(hi, to_seq - first + 1)
            if lo < hi:
                yield records[lo:hi] if (lo, hi) != (0, len(records)) else records

    def records(self, from_seq: int | None = None, to_seq: int | None = None) -> Iterator[np.void]:
        """Yield verified records one by one (the slow path: inspection, tests)."""
        for batch in self.batches(from_seq, to_seq):
            yield from batch

    def read(self, from_seq: int | None = None, to_seq: int | None = None) -> np.ndarray:
        """All verified records of a range as one array (for tests and small journals)."""
        parts = list(self.batches(from_seq, to_seq))
        if not parts:
            return np.empty(0, dtype=self.dtype)
        return concat_records(parts)

    def _blocks(
        self, start: int, skip_before: int | None
    ) -> Iterator[tuple[Path, int, np.ndarray | None]]:
        """Every block from segment ``start`` on, with segment continuity checked."""
        expected: int | None = None
        for i in range(start, len(self._segments)):
            header = self._segments[i]
            is_last = i == len(self._segments) - 1
            if expected is not None and header.first_seq != expected:
                raise JournalCorruptError(
                    f"journal segment {header.path} at offset {header.header_size}: starts at "
                    f"seq {header.first_seq} but the previous segment ends before seq {expected}",
                    header.path,
                    header.header_size,
                    expected,
                )
            try:
                size = header.path.stat().st_size
                f = open(header.path, "rb", buffering=1 << 20)  # noqa: SIM115
            except OSError as exc:
                raise access_error(exc, header.path, "reading the segment") from None
            next_seq = header.first_seq
            with f:
                try:
                    for offset, first, count, records in scan_blocks(
                        f, header, size, is_last=is_last, skip_before=skip_before
                    ):
                        next_seq = first + count
                        yield header.path, offset, records
                except TornAppend as torn:
                    self.repairs.append(cut_torn_tail(header.path, torn, repair=self.repair))
                    self.last_seq = torn.seq - 1
                    return
            expected = next_seq
            if is_last:
                self.last_seq = next_seq - 1
