"""The model, metric and training tests on JAX and PyTorch, beside the suite's own TensorFlow run.

Keras fixes its backend when it is imported, so each module runs again in a subprocess with
``KERAS_BACKEND`` set (its fast tests: ``-m "not slow"``). CI's environment holds both
engines (``jax[cpu]`` and the CPU ``torch`` wheel in setup.cfg's ``test`` extra); elsewhere a
backend that is not installed is skipped, saying so. Figures: docs/training.md.

On JAX the reruns compile with XLA's optimisations mostly off (``JAX_DISABLE_MOST_OPTIMIZATIONS``,
JAX's flag for smoke tests): the same operations and gradients, built faster. Measured on the
fast tests of test_model.py: 185 CPU seconds with it against 278 without (0.66x), the same
tests passing; the XLA compile of each test's model is what these reruns spend their time on.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODULES = ("test_model.py", "test_metric.py", "test_training.py")


@pytest.mark.slow
@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_module_on_backend(backend, module):
    if os.environ.get("KERAS_BACKEND", "tensorflow") == backend:
        pytest.skip(f"this run already uses {backend}")
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed (pip install -e '.[test]' installs it)")
    env = {**os.environ, "KERAS_BACKEND": backend}
    if backend == "jax":
        env.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-m", "not slow",
         str(ROOT / "tests" / module)],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=1500)
    assert run.returncode == 0, f"{module} on {backend} failed:\n{run.stdout[-4000:]}\n{run.stderr[-2000:]}"
    assert " passed" in run.stdout.splitlines()[-1], run.stdout[-500:]
