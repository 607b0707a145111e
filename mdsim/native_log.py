"""TensorFlow's native start-up lines, kept off the terminal of the ``mdsim`` command.

Importing TensorFlow and probing its devices writes lines such as ``WARNING: All log
messages before absl::InitializeLog() is called are written to STDERR``, ``cudart_stub.cc:31]
Could not find cuda drivers`` or ``cuda_platform.cc:52] failed call to cuInit`` from C++ to
file descriptor 2, before ``TF_CPP_MIN_LOG_LEVEL`` is read, so the variable cannot silence
them. :func:`quiet_tensorflow_start` catches that one moment: the first ``import tensorflow``
(by Keras or anyone) and the device probe right after it run with descriptor 2 on a temporary
file, and every line of it that is not one of these known start-up lines is written to
stderr afterwards (a real error still reaches the user).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import re
import sys
import tempfile

#: Whether the user chose TensorFlow's native log level; then mdsim filters nothing.
USER_LOG_LEVEL = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
# Native INFO and WARNING lines after start-up (oneDNN, XLA notices) are noise to mdsim's users.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: The start-up lines dropped: absl's notice, and native log lines of the CUDA probes, the CPU
#: feature guard and the oneDNN notice (glog ``I0000 00:00:1.2 123 file.cc:31]`` or TF's older
#: ``2024-01-01 00:00:00.0: I file.cc:31]`` prefix); the CPU guard's second line too.
START_UP_LINE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|(?:[IWE]\d{4} [\d:.]+\s+\d+ |\d{4}-\d\d-\d\d [\d:.]+: [IWE] )(?:\S*/)?"
    r"(?:cudart_stub|cuda_platform|cuda_executor|cuda_diagnostics|cuda_dnn|cuda_fft|cuda_blas|"
    r"cpu_feature_guard|computation_placer|port|cpu_utils)\.cc:\d+\]"
    r"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\.")


def keep_line(line: str) -> bool:
    """Whether a line that TensorFlow's start-up wrote to stderr should reach the user.

    >>> keep_line("I0000 00:00:1796.12 2725 cudart_stub.cc:31] Could not find cuda drivers on your machine")
    False
    >>> keep_line("Segmentation fault in libcudnn")
    True
    """
    return not START_UP_LINE.match(line)


class _QuietLoader(importlib.abc.Loader):
    """Runs TensorFlow's own loader with descriptor 2 on a temporary file; the module keeps that loader."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        module.__loader__ = module.__spec__.loader = self.loader
        with _native_stderr_filtered():
            self.loader.exec_module(module)
            config = getattr(module, "config", None)
            if config is not None:  # the CUDA probe (cuInit) runs here rather than at the first operation
                config.list_physical_devices()


class _FirstTensorFlowImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "tensorflow":
            return None
        if self in sys.meta_path:  # once: later imports find the module in sys.modules anyway
            sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def quiet_tensorflow_start() -> None:
    """Filter the native start-up lines of TensorFlow's first import in this process.

    Does nothing where TensorFlow is already imported, or where the user set
    ``TF_CPP_MIN_LOG_LEVEL`` (then every line is shown, as TensorFlow prints them)."""
    if "tensorflow" in sys.modules or USER_LOG_LEVEL is not None:
        return
    if not any(isinstance(f, _FirstTensorFlowImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _FirstTensorFlowImport())


class _native_stderr_filtered:
    """Descriptor 2 on a temporary file inside the block; its lines, filtered, to stderr after."""

    def __enter__(self):
        try:
            sys.stderr.flush()
            self.saved = os.dup(2)
        except (OSError, ValueError, AttributeError):  # no descriptor 2 to catch: nothing to filter
            self.saved = None
            return self
        self.file = tempfile.TemporaryFile()
        os.dup2(self.file.fileno(), 2)
        return self

    def __exit__(self, *exc) -> None:
        if self.saved is None:
            return
        try:
            sys.stderr.flush()
        finally:
            os.dup2(self.saved, 2)
            os.close(self.saved)
        self.file.seek(0)
        text = self.file.read().decode(errors="replace")
        self.file.close()
        kept = "".join(line for line in text.splitlines(keepends=True) if keep_line(line))
        if kept:
            sys.stderr.write(kept)
            sys.stderr.flush()
