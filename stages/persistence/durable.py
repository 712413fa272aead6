"""Making a file-system change durable, the one step the journal and the snapshots share.

A new, renamed or deleted file survives a crash only once its directory entry is on disk:
fsyncing the file is not enough, the directory itself must be fsynced too.
"""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """fsync ``directory`` so the entries created, renamed or removed in it are durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
