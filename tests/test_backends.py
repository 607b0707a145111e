"""The model, metric and training tests on JAX and PyTorch, beside the suite's own TensorFlow run.

Keras fixes its backend when it is imported, so each module runs again in a subprocess with
``KERAS_BACKEND`` set (its fast tests: ``-m "not slow"``). CI's environment holds both
engines (``jax[cpu]`` and the CPU ``torch`` wheel in setup.cfg's ``test`` extra); elsewhere a
backend that is not installed is skipped, saying so. Figures: docs/training.md.
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
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-m", "not slow",
         str(ROOT / "tests" / module)],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=1500)
    assert run.returncode == 0, f"{module} on {backend} failed:\n{run.stdout[-4000:]}\n{run.stderr[-2000:]}"
    assert " passed" in run.stdout.splitlines()[-1], run.stdout[-500:]
