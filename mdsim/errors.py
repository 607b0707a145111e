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
