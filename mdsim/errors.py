"""The one error root of mdsim, and its few subclasses.

Every message quotes the bad value and says how to fix it, e.g.
``manifest.csv has no column 'track_id' (columns: id, path)``.
"""


class MdsimError(Exception):
    """Base class of every error mdsim raises on purpose."""


class InputError(MdsimError):
    """A user-supplied file or value is missing, malformed or out of range."""


class AudioError(InputError):
    """An audio file cannot be decoded, or holds no usable signal."""


class StoreError(MdsimError):
    """A features store or embeddings file is missing, corrupt or incompatible."""


class ModelError(MdsimError):
    """A model file is missing, not an mdsim model, or from a newer format."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill PID``, a scheduler's or container's stop) raised as an interrupt.

    A subclass of KeyboardInterrupt, so every path that keeps finished work on Ctrl-C
    (prep's commit, train's finished epochs, embed's checkpoints) runs for it too.

    ``requested`` stays True from the signal until the command ends: Python prints and drops
    an interrupt raised while the main thread runs a finalizer (an object's ``__del__``, a
    weakref callback; TensorFlow has many), and the command would then run on, deaf to the stop
    it was sent. Long loops call :func:`stop_if_terminated` at their safe points."""

    requested = False


def stop_if_terminated() -> None:
    """Raise :class:`Terminated` if a stop was requested: a no-op unless the interrupt that
    SIGTERM raised was lost in a finalizer (see :class:`Terminated`)."""
    if Terminated.requested:
        raise Terminated
