"""A run's journal and snapshot directories: checked before a run, cleared only of our files.

``tradepipe run --fresh`` must never delete what is not tradepipe's and never the journal of
a run that is still going. Everything here works under the journal's writer lock (a live
writer holds it until it dies, so a refusal names its pid), refuses a directory that is a
symbolic link or a file, and names the entries it will not touch. It removes files only,
never a directory: an emptied directory stays.

Tradepipe's own files: in a journal directory the segments (``*.tpj``), their temp files,
``writer.lock``, ``durable.mark`` and ``initial-state.tps``; in a snapshot directory the
snapshots (``snapshot-*.tps``) and their temp files. Anything else is someone else's.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from stages.persistence.durable import explain_os_error, fsync_dir
from stages.persistence.journal_errors import JournalBusyError, JournalError
from stages.persistence.journal_lock import LOCK_NAME, lock_journal
from stages.persistence.journal_segments import is_journal_file
from stages.persistence.snapshots import is_snapshot_file

#: How many foreign entries a refusal names before "and N more".
NAMED_ENTRIES = 5


class RunDirectoryError(JournalError):
    """A run directory cannot be used or cleared; the message says which and why.

    ``busy``: a live process holds the journal (retry once it has stopped).
    ``previous_run``: the directories hold an earlier run's files (not cleared without
    ``fresh``). Otherwise the directory itself is unusable (a file, a symbolic link, files
    that are not tradepipe's, or the system refused).
    """

    def __init__(
        self, message: str, path: Path, *, busy: bool = False, previous_run: bool = False
    ) -> None:
        super().__init__(message)
        self.path = path
        self.busy = busy
        self.previous_run = previous_run


@dataclass
class RunFiles:
    """What a run's directories hold: tradepipe's own files and everything else."""

    journal_dir: Path
    snapshot_dir: Path
    own: list[Path] = field(default_factory=list)
    foreign: list[Path] = field(default_factory=list)

    @property
    def segments(self) -> list[Path]:
        return [p for p in self.own if p.suffix == ".tpj"]

    @property
    def snapshots(self) -> list[Path]:
        return [p for p in self.own if p.name.startswith("snapshot-")]

    @property
    def holds_a_run(self) -> bool:
        """Whether an earlier run left records or snapshots (a lock alone is not a run)."""
        return bool(self.segments or self.snapshots)


def run_directory(path: str | os.PathLike[str], kind: str) -> Path:
    """The directory a config names, ``~`` expanded; refuse a symbolic link or a file.

    ``kind`` names it in messages (``journal``, ``snapshot``). A missing directory is fine:
    the run creates it.
    """
    directory = Path(path).expanduser()
    if str(path).strip() == "":
        raise RunDirectoryError(f"the {kind} directory is empty: name a directory", directory)
    if directory.is_symlink():
        raise RunDirectoryError(
            f"{kind} directory {directory} is a symbolic link (to {os.readlink(directory)}); "
            "tradepipe clears only a real directory: name the directory it points to",
            directory,
        )
    if directory.exists() and not directory.is_dir():
        raise RunDirectoryError(
            f"{kind} directory {directory} is a file, not a directory: move it, or name "
            "another directory",
            directory,
        )
    return directory


def _list(directory: Path, kind: str, files: RunFiles) -> None:
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise RunDirectoryError(
            explain_os_error(exc, directory, "listing it", f"{kind} directory"), directory
        ) from None
    for name in names:
        path = directory / name
        ours = (is_journal_file(name) or is_snapshot_file(name)) and not (
            path.is_dir() or path.is_symlink()
        )
        if path in files.own or path in files.foreign:
            continue  # journal and snapshots share one directory
        (files.own if ours else files.foreign).append(path)


def _refuse_foreign(files: RunFiles) -> None:
    if not files.foreign:
        return
    named = ", ".join(
        f"{p.name}/" if p.is_dir() and not p.is_symlink() else p.name
        for p in files.foreign[:NAMED_ENTRIES]
    )
    more = len(files.foreign) - NAMED_ENTRIES
    if more > 0:
        named += f" and {more} more"
    where = sorted({str(p.parent) for p in files.foreign})
    raise RunDirectoryError(
        f"{' and '.join(where)} holds entries that are not tradepipe's ({named}); tradepipe "
        "never removes or mixes with them: point journal.directory / snapshots.directory at "
        "a directory of their own",
        files.foreign[0].parent,
    )


@contextlib.contextmanager
def _journal_locked(journal_dir: Path, purpose: str):  # type: ignore[no-untyped-def]
    """Hold the journal's writer lock (if the directory exists) for the block."""
    if not journal_dir.exists():
        yield
        return
    try:
        fd = lock_journal(journal_dir, purpose)
    except JournalBusyError as error:
        raise RunDirectoryError(str(error), journal_dir, busy=True) from None
    except JournalError as error:
        raise RunDirectoryError(str(error), journal_dir) from None
    try:
        yield
    finally:
        os.close(fd)


def inspect_run_directories(
    journal_dir: str | os.PathLike[str], snapshot_dir: str | os.PathLike[str]
) -> RunFiles:
    """What the two directories hold, checked under the journal lock (refused while busy).

    Raises :class:`RunDirectoryError`: ``busy`` while a live writer holds the journal; for a
    symbolic link, a file, or entries that are not tradepipe's (naming a few).
    """
    journal = run_directory(journal_dir, "journal")
    snapshots = run_directory(snapshot_dir, "snapshot")
    files = RunFiles(journal, snapshots)
    _list(journal, "journal", files)  # refuse before even creating the lock file
    _list(snapshots, "snapshot", files)
    _refuse_foreign(files)
    files = RunFiles(journal, snapshots)
    with _journal_locked(journal, "starting a run"):
        _list(journal, "journal", files)
        _list(snapshots, "snapshot", files)
    files.own = [p for p in files.own if p.name != LOCK_NAME or p.parent != journal]
    _refuse_foreign(files)
    return files


def remove_run_files(
    journal_dir: str | os.PathLike[str], snapshot_dir: str | os.PathLike[str] | None
) -> list[Path]:
    """Remove a previous run's files (``run --fresh``): only tradepipe's own, never a live run's.

    Takes the journal's writer lock first and holds it throughout, so a running writer is
    never touched (``busy``); refuses a symbolic link, a file, or a directory holding
    anything that is not tradepipe's, naming up to a few entries, before removing
    anything. Removes snapshots first, then the journal's files (its lock file stays: it is
    held), and never a directory. ``snapshot_dir=None``: the journal directory only.
    Returns the files removed.
    """
    journal = run_directory(journal_dir, "journal")
    snapshots = run_directory(snapshot_dir, "snapshot") if snapshot_dir is not None else journal
    files = RunFiles(journal, snapshots)
    _list(journal, "journal", files)  # refuse before even creating the lock file
    _list(snapshots, "snapshot", files)
    _refuse_foreign(files)
    files = RunFiles(journal, snapshots)
    removed: list[Path] = []
    with _journal_locked(journal, "removing its files (--fresh)"):
        _list(journal, "journal", files)  # again under the lock: what is there now counts
        _list(snapshots, "snapshot", files)
        _refuse_foreign(files)
        doomed = [p for p in files.own if not (p.name == LOCK_NAME and p.parent == journal)]
        doomed.sort(key=lambda p: (p.parent != snapshots, p.name))  # snapshots first
        for path in doomed:
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise RunDirectoryError(
                    explain_os_error(exc, path, "removing it", "run file"), path
                ) from None
            removed.append(path)
        for directory in {p.parent for p in removed}:
            fsync_dir(directory)
    return removed
