"""The system refusing a journal file is one clear JournalError naming the path and the fix.

A directory that is a file, a segment name that is a directory, a read-only file system, a
directory under /proc, a full disk when the journal is created: never a raw OSError.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from stages.persistence import journal_writer
from stages.persistence.journal_errors import JournalAccessError, JournalFullError
from stages.persistence.journal_reader import JournalReader
from stages.persistence.journal_verify import verify_journal
from stages.persistence.journal_writer import JournalWriter
from stages.records import COMMAND_DTYPE


def test_a_journal_directory_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(JournalAccessError, match="afile is a file, not a directory"):
        JournalWriter(tmp_path / "afile", COMMAND_DTYPE)
    with pytest.raises(JournalAccessError, match="a file is in the way") as info:
        JournalWriter(tmp_path / "afile" / "journal", COMMAND_DTYPE)
    assert info.value.errno == errno.ENOTDIR
    with pytest.raises(JournalAccessError, match="afile is a file, not a journal directory"):
        verify_journal(tmp_path / "afile")


def test_a_segment_name_that_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "00000000000000000001.tpj").mkdir()
    for open_it in (
        lambda: JournalWriter(tmp_path, COMMAND_DTYPE),
        lambda: JournalReader(tmp_path),
    ):
        with pytest.raises(JournalAccessError, match=r"0001\.tpj.*Is a directory.*move it") as info:
            open_it()
        assert info.value.errno == errno.EISDIR
    with JournalWriter(tmp_path / "after", COMMAND_DTYPE):
        pass  # and the lock of the refused writer was released (no leftover state)


def test_a_directory_under_proc(tmp_path: Path) -> None:
    with pytest.raises(JournalAccessError, match=r"/proc/tradepipe-test.*writable file system"):
        JournalWriter("/proc/tradepipe-test/journal", COMMAND_DTYPE)


def _refuse(monkeypatch: pytest.MonkeyPatch, code: int, suffix: str) -> None:
    real = os.open

    def fake(path, *args, **kwargs):
        if str(path).endswith(suffix):
            raise OSError(code, os.strerror(code), str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake)


def test_a_read_only_file_system(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _refuse(monkeypatch, errno.EROFS, "writer.lock")
    with pytest.raises(JournalAccessError, match="read-only: put the journal on a writable one"):
        JournalWriter(tmp_path, COMMAND_DTYPE)


def test_no_permission(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _refuse(monkeypatch, errno.EACCES, ".tpj.tmp")
    with pytest.raises(JournalAccessError, match="no permission: run as the journal's owner"):
        JournalWriter(tmp_path, COMMAND_DTYPE)
    monkeypatch.undo()
    with JournalWriter(tmp_path, COMMAND_DTYPE) as writer:  # nothing half-made was left
        assert writer.next_seq == 1


def test_a_full_disk_when_the_journal_is_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int, buffers: list) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(journal_writer, "_writev", full)
    with pytest.raises(JournalFullError, match=r"disk full .*free space"):
        JournalWriter(tmp_path, COMMAND_DTYPE)
    assert not list(tmp_path.glob("*.tpj")) and not list(tmp_path.glob(".*.tmp"))
