"""The tempogram computed in the step (mdsim/model/tempogram.py) against the CPU's, on every backend."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import clicks, sine
from mdsim.features.spectral import padded_envelope, tempogram_frames

ROOT = Path(__file__).resolve().parent.parent
ATOL = 1e-4  # float32 FFTs of two libraries, on values normalised to at most 1
W = 259


def _envelope(seconds: float) -> np.ndarray:
    from mdsim.features.spectral import extract_features

    y = clicks(bpm=97.0, seconds=seconds) + 0.2 * sine(330.0, seconds=seconds)
    return extract_features(y.astype(np.float32))["onset"][0]


@pytest.mark.parametrize("cyclic", [False, True])
def test_layer_gives_the_cpu_tempogram_frames(cyclic):
    """Windows at a track's start and end (the ramps of the padding), in its middle, and a track
    shorter than a window (frames past its end are zeros, as the loader pads them)."""
    import keras

    from mdsim.model.tempogram import OnsetTempogram

    long, short = _envelope(8.0), _envelope(1.5)
    assert short.size < W < long.size - W
    windows = [(long, 0), (long, 5), (long, long.size // 2), (long, long.size - W), (long, long.size - 40),
               (short, 0), (short, 30)]
    envelope = np.zeros((len(windows), 1, W + 383), np.float32)
    frames = np.zeros(len(windows), np.int32)
    for i, (oenv, start) in enumerate(windows):
        padded = padded_envelope(oenv, start, start + W)
        envelope[i, 0, :padded.size] = padded
        frames[i] = min(W, oenv.size - start)
    out = keras.ops.convert_to_numpy(OnsetTempogram(384, cyclic)((envelope, frames)))
    assert out.shape == (len(windows), 384, W) and out.dtype == np.float32
    for i, (oenv, start) in enumerate(windows):
        expected = np.zeros((384, W), np.float32)
        cpu = tempogram_frames(oenv, start, start + W, cyclic=cyclic)
        expected[:, :cpu.shape[1]] = cpu
        np.testing.assert_allclose(out[i], expected, rtol=0, atol=ATOL, err_msg=f"window {i} (start {start})")
    assert np.all(out[-1][:, frames[-1]:] == 0)


@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
def test_layer_gives_the_cpu_tempogram_frames_on_every_backend(backend):
    if os.environ.get("KERAS_BACKEND", "tensorflow") == backend:
        pytest.skip(f"this run uses {backend}: the test above")
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed (pip install -e '.[test]' installs it)")
    env = {**os.environ, "KERAS_BACKEND": backend}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                          f"{__file__}::test_layer_gives_the_cpu_tempogram_frames"],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert run.returncode == 0, f"on {backend}:\n{run.stdout[-4000:]}\n{run.stderr[-2000:]}"
    assert "2 passed" in run.stdout.splitlines()[-1], run.stdout[-500:]
