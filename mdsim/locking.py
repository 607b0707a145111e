"""One writer per output file: an advisory lock beside it.

``exclusive_lock(path, what=...)`` takes an ``fcntl`` lock on ``PATH.lock``
(created if missing, left in place: removing it would race with a process
that is about to take it). The kernel drops the lock when its process ends,
``kill -9`` included, so a dead writer never blocks the next one. A second
writer fails at once with a message naming the holder's process id.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from mdsim.errors import InputError


def lock_path(path) -> Path:
    """The lock file of an output: ``PATH.lock``."""
    return Path(str(path) + ".lock")


@contextmanager
def exclusive_lock(path, *, what: str):
    """Hold the write lock of ``path`` for the ``with`` block.

    Raises
    ------
    InputError
        When another process holds it: ``"<path> is being written by another
        <what> (process <pid>); ..."``.
    """
    import fcntl

    lp = lock_path(path)
    lp.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lp, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise InputError(f"{path} is being written by another {what} (process {holder}); wait for it to "
                         "finish, or write to another output") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
