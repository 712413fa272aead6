"""Verifying a journal: every checksum and sequence, and whether its end lost anything.

Reading every block proves the journal sound up to its end (or finds the corruption or the
torn tail), but an intact journal can still be short: its newest segment deleted. The end is
therefore cross-checked against the witnesses that outlive such a loss, the writer's
durable mark and the newest valid snapshot; records they prove existed but the journal no
longer holds are reported in :attr:`JournalReport.missing`, with what proves them. Verifying
changes nothing unless ``repair=True`` (which cuts off a torn tail under the writer lock).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stages.persistence.journal_blocks import TornTail
from stages.persistence.journal_durability import (
    DURABLE_MARK_NAME,
    MissingRecords,
    read_durable_mark,
)
from stages.persistence.journal_errors import JournalError
from stages.persistence.journal_reader import JournalReader
from stages.persistence.snapshots import SnapshotError, SnapshotStore


@dataclass
class JournalReport:
    """What :func:`verify_journal` found: extent, counts, any torn tail, anything missing."""

    directory: Path
    segments: int = 0
    blocks: int = 0
    records: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    bytes: int = 0
    torn: list[TornTail] = field(default_factory=list)
    #: records the writer's durable mark or the newest snapshot prove were there (a
    #: deleted newest segment): the journal cannot be replayed to the state it held.
    missing: list[MissingRecords] = field(default_factory=list)
    #: where the cross-checks came from (the durable mark, the newest snapshot), or why
    #: there was none; for the summary
    checked_against: list[str] = field(default_factory=list)


def verify_journal(
    directory: str | os.PathLike[str],
    dtype: np.dtype | None = None,
    *,
    repair: bool = False,
    snapshot_dir: str | os.PathLike[str] | None = None,
) -> JournalReport:
    """Check every block's checksum and every sequence of a journal; return what was found.

    Raises :class:`JournalCorruptError` or :class:`JournalLayoutError` for a journal that
    cannot be replayed; a torn tail is reported in ``torn`` (and cut off if ``repair``).

    A journal can also be intact but short: its newest segment deleted. The end is
    cross-checked against the writer's durable mark and, when ``snapshot_dir`` is given, the
    newest valid snapshot; records they prove existed are reported in ``missing`` (with
    what proves it). A ``snapshot_dir`` that does not exist raises :class:`JournalError`.
    """
    directory = Path(directory).expanduser()
    with JournalReader(directory, dtype, repair=repair) as reader:
        report = JournalReport(directory, segments=len(reader.segments))
        for batch in reader.batches():
            report.blocks += 1
            report.records += len(batch)
            if report.first_seq is None:
                report.first_seq = int(batch["seq"][0])
            report.last_seq = int(batch["seq"][-1])
        for header in reader.segments:
            report.bytes += header.path.stat().st_size if header.path.exists() else 0
        report.torn = list(reader.repairs)
        end = reader.last_seq if reader.last_seq is not None else 0
        newest_first = reader.segments[-1].first_seq if reader.segments else None
    _cross_check_end(report, end, newest_first, snapshot_dir)
    return report


def _cross_check_end(
    report: JournalReport,
    end: int,
    newest_first: int | None,
    snapshot_dir: str | os.PathLike[str] | None,
) -> None:
    """Report records the durable mark or the newest snapshot prove the journal lost."""
    mark = read_durable_mark(report.directory)
    if mark is None:
        exists = (report.directory / DURABLE_MARK_NAME).exists()
        report.checked_against.append(
            f"{DURABLE_MARK_NAME} damaged: the end was not cross-checked against it"
            if exists
            else f"no {DURABLE_MARK_NAME} (a journal from before it existed)"
        )
    else:
        report.checked_against.append(
            f"{DURABLE_MARK_NAME}: durable up to seq {mark.durable_seq} at the writer's last "
            "rotation or close"
        )
        missing = mark.missing_after(end, newest_first)
        if missing is not None:
            report.missing.append(missing)
    if snapshot_dir is not None:
        snapshots = Path(snapshot_dir).expanduser()
        if not snapshots.is_dir():
            raise JournalError(
                f"snapshot directory {snapshots} does not exist (or is not a directory)"
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a corrupt snapshot is replay's business
            try:
                newest = SnapshotStore(snapshots).latest()
            except SnapshotError as error:
                raise JournalError(str(error)) from None
        if newest is None:
            report.checked_against.append(f"no valid snapshot in {snapshots}")
        else:
            report.checked_against.append(f"snapshot {newest.path.name}: seq {newest.seq}")
            if newest.seq > end:
                report.missing.append(
                    MissingRecords(
                        end + 1, newest.seq, f"snapshot {newest.path} covers up to seq {newest.seq}"
                    )
                )
