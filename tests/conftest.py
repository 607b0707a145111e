"""Shared fixtures: a seeded rng, generated signals, the bundled recordings."""

from __future__ import annotations

import atexit
import csv
import os
import shutil
import tempfile
from pathlib import Path

# Numba's on-disk cache (librosa compiles with cache=True) is not safe for two processes that
# compile the same function at once: a generalised ufunc's cache can then crash every later
# process that loads it with a segmentation fault (numba issue 10128; seen here as
# librosa.estimate_tuning killed by signal 11 after two workers prepped at the same moment).
# Each pytest-xdist worker, and every process it starts, keeps its own cache, removed at its end.
if os.environ.get("PYTEST_XDIST_WORKER") and "NUMBA_CACHE_DIR" not in os.environ:
    os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix=f"mdsim-numba-{os.environ['PYTEST_XDIST_WORKER']}-")
    atexit.register(shutil.rmtree, os.environ["NUMBA_CACHE_DIR"], ignore_errors=True)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from mdsim.data import AUDIO_DIR as BUNDLED_AUDIO_DIR  # noqa: E402

# The suite's JAX trainings (and the processes they start) keep no compiled steps in the user's
# cache folder; tests/test_training.py's cache test gives its runs a folder of their own.
os.environ.setdefault("MDSIM_COMPILE_CACHE", "off")

SR = 22050
AUDIO_DIR = BUNDLED_AUDIO_DIR
RECORDINGS = ("brahms", "fishin", "humpback", "nutcracker", "robin", "speech", "trumpet", "vibeace")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def audio_dir() -> Path:
    return AUDIO_DIR


def sine(freq=440.0, seconds=4.0, sr=SR, amp=0.5):
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def chirp(seconds=4.0, sr=SR, f0=100.0, f1=4000.0):
    import scipy.signal

    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * scipy.signal.chirp(t, f0, seconds, f1)).astype(np.float32)


def clicks(bpm=120.0, seconds=6.0, sr=SR):
    """A click track: short decaying noise bursts on the beat."""
    y = np.zeros(int(seconds * sr), dtype=np.float32)
    burst = (np.random.default_rng(1).standard_normal(800) * np.exp(-np.arange(800) / 120)).astype(np.float32)
    for start in np.arange(0, seconds, 60.0 / bpm):
        i = int(start * sr)
        y[i:i + 800] += burst[: len(y[i:i + 800])]
    return 0.5 * y / np.abs(y).max()


def wait_until_caught(pid: int, signum: int, timeout: float = 120.0) -> bool:
    """Wait until process ``pid`` handles ``signum`` (Linux: the ``SigCgt`` mask of
    ``/proc/PID/status``); False when it never does. ``mdsim``'s ``main()`` catches SIGTERM while
    a command runs, so waiting for that says the command is under way: a test's signal then meets
    the command rather than an interpreter still starting, which under load can outlast any fixed
    sleep."""
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with open(f"/proc/{pid}/status") as f:
                caught = next(int(line.split()[1], 16) for line in f if line.startswith("SigCgt:"))
        except (OSError, StopIteration):
            return False
        if caught >> (signum - 1) & 1:
            return True
        time.sleep(0.01)
    return False


def stop_signals_at_default() -> None:
    """``preexec_fn`` for a child that a test interrupts: SIGINT and SIGTERM back at their defaults.

    A process started in the background (``cmd &`` from a script, ``nohup``, some CI wrappers)
    runs with SIGINT ignored, and its children inherit that, so Python in the child would never
    raise KeyboardInterrupt and a Ctrl-C test would measure how the suite was launched; a
    supervisor may likewise leave SIGTERM ignored, which `mdsim` then leaves alone."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def interruptible(args, **kwargs):
    """``subprocess.Popen`` of a child that a test will stop: SIGINT and SIGTERM at their
    defaults (:func:`stop_signals_at_default`), stderr piped, and Python's fault handler on, so
    :func:`exit_status` can show where a child that does not stop is stuck."""
    import subprocess

    env = dict(kwargs.pop("env", None) or os.environ, PYTHONFAULTHANDLER="1")
    return subprocess.Popen(args, stderr=subprocess.PIPE, text=True, preexec_fn=stop_signals_at_default,
                            env=env, **kwargs)


def exit_status(proc, timeout: float = 120) -> tuple[int, str]:
    """The child's exit status and its stderr, read while waiting (a child writing more than a
    pipe holds must not block). A child still running after ``timeout`` seconds is sent
    SIGABRT, which makes its fault handler print every thread's stack, and the test fails
    with that stack."""
    import signal
    import subprocess

    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        pytest.fail(f"{' '.join(map(str, proc.args[1:4]))}: still running {timeout:.0f} s after it was "
                    f"stopped; its threads then:\n{(err or '')[-8000:]}")
    return proc.returncode, err or ""


def onednn_active() -> bool | None:
    """Whether TensorFlow runs its oneDNN CPU kernels in this process (None: cannot tell).

    They are on by default on some processors only and ``TF_ENABLE_ONEDNN_OPTS`` turns them
    on or off: a training's numbers differ between the two sets of kernels as they do between
    processors, so the other set is a machine's stand-in for another processor."""
    try:
        import tensorflow  # noqa: F401
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:
        return None
    return bool(_pywrap_util_port.IsMklEnabled())


def record_learning(test: str, stats: dict) -> None:
    """Append a learning test's statistics to the JSON-lines file ``$MDSIM_LEARNING_LOG`` names,
    when it names one, so a whole suite run adds a row to each test's spread
    (``experiments/learning_spread.py --add LOG`` folds them into its table; docs/testing.md)."""
    import json
    import os

    log = os.environ.get("MDSIM_LEARNING_LOG")
    if log:
        row = {"test": test, "stats": {**{k: float(v) for k, v in stats.items()}, "_onednn": onednn_active()}}
        with open(log, "a") as f:
            f.write(json.dumps(row) + "\n")


def write_wav(path, y, sr=SR):
    import soundfile as sf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), y, sr, subtype="PCM_16")
    return path


def write_manifest(path, rows, columns=None):
    columns = columns or list(rows[0])
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        for r in rows:
            w.writerow(r)
    return Path(path)


@pytest.fixture
def small_corpus(tmp_path):
    """Six short labelled tracks with tempo and key in the manifest (madmom is skipped)."""
    folder = tmp_path / "corpus"
    rows = []
    for i in range(6):
        y = clicks(bpm=90 + 10 * i, seconds=4.0) + 0.3 * sine(220 * (1 + i / 6), seconds=4.0)
        write_wav(folder / f"t{i}.wav", y)
        rows.append({"track_id": f"t{i}", "path": f"t{i}.wav", "genre": ["rock", "jazz"][i % 2],
                     "mood": "happy;calm" if i % 3 == 0 else "sad", "instrument": "", "era": "",
                     "tempo": 90 + 10 * i, "key": ["C major", "A minor", "F# minor"][i % 3],
                     "group": f"artist{i // 2}", "year": 1990 + i})
    return write_manifest(folder / "manifest.csv", rows)


#: The test files that take longest, the longest first (``make test``'s ``--durations``, summed
#: by file). ``make test`` runs two pytest-xdist workers and gives each file whole to one worker
#: (``--dist loadfile``, module fixtures built once) in collection order
#: (``--no-loadscope-reorder``): started first, the long files run beside each other and beside
#: the short ones, instead of one of them running alone at the end while the other worker idles.
LONG_FILES = ("test_loev.py", "test_training.py", "test_backends.py", "test_disentanglement.py",
              "test_manifold.py", "test_default_model.py", "test_experiments.py", "test_synth.py",
              "test_model.py", "test_store.py")


def pytest_collection_modifyitems(config, items):
    """The files of :data:`LONG_FILES` first, in that order; the others after them, as collected
    (a stable sort: the order inside each file is kept)."""
    rank = {name: i for i, name in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONG_FILES)))
