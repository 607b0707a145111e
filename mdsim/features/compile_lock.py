"""One process at a time compiles librosa's kernels into numba's on-disk cache.

librosa compiles its kernels with numba (``cache=True``) the first time a process calls them
and keeps them in numba's on-disk cache. That cache is not safe for two processes compiling
the same module at the same moment (numba issue 10128): a generalised ufunc's two cache files
can then come from different processes, and from that moment every process that loads them
dies of a segmentation fault (seen here: ``librosa.estimate_tuning`` killed by signal 11 in
every later run after two processes prepped at once, until the cache files were deleted).

:func:`first_compile` serialises the first feature extraction of every process on this
machine (prep workers, a second ``mdsim prep``, ``mdsim embed``, the server) on a file lock:
the first holder compiles and writes the cache, the others then load it. Later calls take no
lock. A process waits at most :data:`WAIT_SECONDS` for the lock (a holder stuck on a file
must not stall every other worker), then goes on unlocked. Where ``fcntl`` is missing (Windows)
or the temporary folder is not writable, nothing is locked.
"""

from __future__ import annotations

import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

#: The longest a process waits for another's first extraction before it goes on unlocked.
WAIT_SECONDS = 300.0
#: True once this process has finished one call under the lock (its kernels are compiled).
_compiled = False
#: True inside the outermost call, holding the lock or past the wait (a nested call does not wait again).
_inside = False


def lock_path() -> Path:
    """The machine-wide lock file (one per user, in the temporary folder)."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"mdsim-numba-compile-{uid}.lock"


class _Outcome:
    ok = True


@contextmanager
def first_compile():
    """Hold the machine-wide compile lock around this process's first successful call.

    Yields an object whose ``ok`` the caller may set to False (a call that reported a failure
    instead of raising); such a call, like one that raises, leaves the process uncompiled, so
    the next call takes the lock again.
    """
    global _compiled, _inside
    outcome = _Outcome()
    if _compiled or _inside or fcntl is None:
        yield outcome
        return
    try:
        f = open(lock_path(), "a")
    except OSError:  # no writable temporary folder: compile unlocked, as before
        yield outcome
        return
    with f:
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:  # the holder is stuck: go on unlocked
                    break
                time.sleep(0.05)
        _inside = True
        try:
            yield outcome
            _compiled = outcome.ok
        finally:
            _inside = False  # closing the file releases the lock
