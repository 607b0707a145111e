"""The Python API: load a trained model, embed audio, compare along chosen dimensions.

>>> import mdsim
>>> model = mdsim.load_model("run/best.keras")                 # doctest: +SKIP
>>> a, b = model.embed(["a.wav", "b.wav"])                      # doctest: +SKIP
>>> model.similarity(a, b, dims=["mood"])                       # doctest: +SKIP
0.83

Segments are 3 s (259 frames) long and do not overlap; a track's embedding
is the mean of its segment embeddings (the paper's protocol). Audio shorter
than one segment is zero-padded, with a warning.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mdsim.audio import file_hash, load_audio, prefetch, prepare_signal, segment_starts
from mdsim.errors import InputError
from mdsim.evaluation.scores import cosine_similarity
from mdsim.features.spectral import extract_features

#: Default number of 3 s segments per network call.
DEFAULT_BATCH_SIZE = 64


@dataclass
class Embedding:
    """Embeddings of one track, with their subspaces by name.

    Attributes
    ----------
    vectors : np.ndarray [shape=(D,) in track mode, (n_segments, D) in segment mode]
        Float32. ``D`` is the size of the selected subspaces together.
    dimensions : tuple of str
        The subspaces held, in embedding order.
    slices : dict
        ``{dimension: slice}`` into the last axis of ``vectors``.
    starts : np.ndarray or None
        Segment start times in seconds (segment mode only).
    source : str
        Path of the audio, ``"<array>"``, or the store's track id.
    """

    vectors: np.ndarray
    dimensions: tuple
    slices: dict
    starts: np.ndarray | None = None
    source: str = ""
    padded: bool = field(default=False, repr=False)

    def __getitem__(self, dimension: str) -> np.ndarray:
        """The slice of one dimension (``emb["mood"]``)."""
        if dimension not in self.slices:
            raise InputError(f"unknown dimension {dimension!r} (this embedding has: {', '.join(self.dimensions)})")
        return self.vectors[..., self.slices[dimension]]

    @property
    def is_segments(self) -> bool:
        return self.vectors.ndim == 2


class Model:
    """A trained mdsim model: embeds audio, arrays or stored features.

    Build with :func:`load_model`. ``dimensions`` lists the subspaces in
    embedding order and ``config`` is the :class:`mdsim.model.ModelConfig`.
    """

    def __init__(self, keras_model, config, *, path=None):
        from mdsim.model import subspace_slices

        self.keras_model = keras_model
        self.config = config
        self.path = Path(path) if path else None
        self.dimensions = tuple(config.dimensions)
        self.slices = subspace_slices(config)
        from mdsim.model import feature_config_of
        from mdsim.model.head import find_head

        head = find_head(keras_model) if keras_model is not None else None
        #: The features this model embeds audio with: its training store's settings.
        self.feature_config = feature_config_of(config, head.feature_config if head is not None else None,
                                                source=str(path or "the model"))
        self._fingerprint = None

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the model file (of the weights for a model not loaded from a file):
        the identity recorded in embeddings files, so vectors of two models never mix."""
        if self._fingerprint is None:
            if self.path is not None and self.path.is_file():
                self._fingerprint = file_hash(self.path, algorithm="sha256")
            else:
                import hashlib

                h = hashlib.sha256()
                for w in self.keras_model.get_weights():
                    h.update(np.ascontiguousarray(w).tobytes())
                self._fingerprint = h.hexdigest()
        return self._fingerprint

    def check_features(self, feature_config, *, source: str) -> None:
        """Raise :class:`~mdsim.errors.InputError` unless ``feature_config`` (of a store,
        say) is what this model embeds with, naming each difference."""
        diff = self.feature_config.differences(feature_config, names=("model", source))
        if diff:
            raise InputError(f"{source} was made with other feature settings than this model was trained on "
                             f"({'; '.join(diff)}); prep it again with the model's settings, or embed the "
                             "audio itself")

    def __repr__(self):
        return (f"<mdsim.Model {self.config.backbone} {self.config.embedding_size}-d "
                f"dims={','.join(self.dimensions)} from {self.path}>")

    # -- selection ---------------------------------------------------------------------
    def check_dims(self, dims) -> tuple:
        """Validated dimension names in embedding order (``None``: all)."""
        if dims is None:
            return self.dimensions
        from mdsim.model import check_dims

        return check_dims(self.config, dims)

    def _select(self, vectors: np.ndarray, dims) -> tuple[np.ndarray, dict]:
        dims = self.check_dims(dims)
        parts, slices, pos = [], {}, 0
        for d in dims:
            s = self.slices[d]
            parts.append(vectors[..., s])
            slices[d] = slice(pos, pos + s.stop - s.start)
            pos += s.stop - s.start
        return np.concatenate(parts, axis=-1), slices

    # -- the network ---------------------------------------------------------------------
    def n_segments(self, features: dict) -> int:
        """Segments a track of these whole-track features is cut into (at least 1)."""
        return max(1, next(iter(features.values())).shape[1] // self.config.n_frames)

    def segments_from_features(self, features: dict) -> tuple[dict, np.ndarray, bool]:
        """Cut whole-track features into non-overlapping segments (zero-padding a short track).

        Returns
        -------
        (inputs, starts, padded)
            ``inputs[name]`` is ``(n_segments, n_bins, n_frames)`` float32 for
            each input the model reads; ``starts`` are start frames.
        """
        seg = self.config.n_frames
        n = next(iter(features.values())).shape[1]
        padded = n < seg
        starts = segment_starts(n, seg)
        inputs = {}
        for name in self.config.inputs:
            x = np.asarray(features[name], dtype=np.float32)
            if padded:
                x = np.pad(x, ((0, 0), (0, seg - n)))
            inputs[name] = np.stack([x[:, s:s + seg] for s in starts])
        return inputs, starts, padded

    def embed_segments(self, inputs: dict, *, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        """Run the network on segment inputs; ``(n_segments, D)`` float32."""
        n = next(iter(inputs.values())).shape[0]
        out = []
        for i in range(0, n, batch_size):
            batch = {k: v[i:i + batch_size] for k, v in inputs.items()}
            out.append(np.asarray(self.keras_model.predict_on_batch(batch), dtype=np.float32))
        return np.concatenate(out) if out else np.zeros((0, self.config.embedding_size), np.float32)

    # -- public ------------------------------------------------------------------------
    def embed(self, audio, *, sr: int | None = None, dims=None, mode: str = "track",
              batch_size: int = DEFAULT_BATCH_SIZE):
        """Embed audio files or arrays.

        Parameters
        ----------
        audio : str, Path, list of those, or np.ndarray
            A path, a list of paths (returns a list), or a signal (needs ``sr``).
        sr : int, optional
            Sample rate of an array input, in Hz.
        dims : sequence of str, optional
            Subspaces to keep (default: all), e.g. ``["mood", "tempo"]``.
        mode : {"track", "segments"}
            ``"track"``: the mean over non-overlapping 3 s segments, ``(D,)``;
            ``"segments"``: one row per segment, ``(n_segments, D)``, with
            ``starts`` in seconds.
        batch_size : int
            Segments per network call; segments of several tracks share batches.

        Returns
        -------
        Embedding or list of Embedding
        """
        if mode not in ("track", "segments"):
            raise InputError(f"unknown mode {mode!r} (valid: track, segments)")
        self.check_dims(dims)
        single = isinstance(audio, (str, Path, np.ndarray))
        items = [audio] if single else list(audio)
        if not items:
            return []

        def load(item):
            if isinstance(item, np.ndarray):
                if sr is None:
                    raise InputError("embedding an array needs its sample rate: embed(y, sr=44100)")
                y = prepare_signal(item, sr, sr=self.feature_config.sample_rate, name="<array>")
                return "<array>", extract_features(y, config=self.feature_config)
            y = load_audio(item, sr=self.feature_config.sample_rate)
            return str(item), extract_features(y, config=self.feature_config)

        # Stream: segments of consecutive tracks share batches; memory holds one batch's tracks.
        results, pending, n_seg = [], [], 0
        for (source, feats), last in prefetch(items, load):
            pending.append((source, feats))
            n_seg += self.n_segments(feats)
            if n_seg >= batch_size or last:
                results += self.embed_features([f for _, f in pending], dims=dims, mode=mode,
                                               batch_size=batch_size, sources=[s for s, _ in pending])
                pending, n_seg = [], 0
        return results[0] if single else results

    def embed_features(self, features_list, *, dims=None, mode: str = "track",
                       batch_size: int = DEFAULT_BATCH_SIZE, sources=None) -> list:
        """Embed whole-track feature dicts (as ``extract_features`` or a store returns them).

        Segments of all tracks are batched together. Returns one
        :class:`Embedding` per track, in order.
        """
        cut = [self.segments_from_features(f) for f in features_list]
        counts = [len(starts) for _, starts, _ in cut]
        inputs = {name: np.concatenate([c[0][name] for c in cut]) for name in self.config.inputs}
        vectors = self.embed_segments(inputs, batch_size=batch_size)
        out, pos = [], 0
        sources = sources or [""] * len(cut)
        hop = self.feature_config.hop_length / self.feature_config.sample_rate
        for (_, starts, padded), count, source in zip(cut, counts, sources):
            v = vectors[pos:pos + count]
            pos += count
            if padded:
                warnings.warn(f"{source or 'a track'} is shorter than one 3 s segment; zero-padded",
                              stacklevel=3)
            if mode == "track":
                v = v.mean(axis=0)
            v, slices = self._select(v, dims)
            out.append(Embedding(v.astype(np.float32), tuple(slices), slices,
                                 starts=starts * hop if mode == "segments" else None,
                                 source=source, padded=padded))
        return out

    def _as_vectors(self, x, dims) -> dict:
        """``{dimension: vector}`` from an Embedding, a full ``(D,)`` vector, or a path."""
        if isinstance(x, Embedding):
            missing = [d for d in dims if d not in x.slices]
            if missing:
                raise InputError(f"embedding lacks dimension(s) {', '.join(missing)} "
                                 f"(it has {', '.join(x.dimensions)})")
            return {d: x[d] for d in dims}
        if isinstance(x, np.ndarray):
            if x.ndim == 1 and x.shape[0] == self.config.embedding_size:
                return {d: x[self.slices[d]] for d in dims}
            raise InputError(f"expected an Embedding or a ({self.config.embedding_size},) vector, got an "
                             f"array of shape {x.shape}; embed audio first with model.embed(y, sr=...)")
        if isinstance(x, (str, Path)):
            return self._as_vectors(self.embed(x), dims)
        raise InputError(f"cannot compare a {type(x).__name__}: give an Embedding, a vector or a path")

    def similarity(self, a, b, *, dims=None, weights=None) -> float:
        """Weighted mean over subspaces of the cosine similarity (-1 to 1).

        ``a`` and ``b`` are :class:`Embedding` objects, full ``(D,)`` vectors,
        or anything :meth:`embed` takes (paths, arrays are not accepted here
        since they need ``sr``: embed them first). ``weights`` maps dimension
        names to non-negative weights (default: equal).

        Each subspace counts by its direction only, whatever its norm: with
        equal weights, ``1 - similarity`` is the mean per-subspace cosine
        distance, so ranking by it is ranking by the ``"normalised"`` distance
        of ``mdsim evaluate`` (the default; docs/method.md, "Distance in a set
        of subspaces"). A zero slice has similarity 0 with anything.
        """
        dims = self.check_dims(dims if dims is not None else (list(weights) if weights else None))
        w = self._weights(dims, weights)
        va, vb = self._as_vectors(a, dims), self._as_vectors(b, dims)
        return float(sum(w[d] * cosine_similarity(va[d], vb[d]) for d in dims) / sum(w.values()))

    def nearest(self, query, catalog, *, k: int = 10, dims=None, weights=None) -> list:
        """The ``k`` catalog entries most similar to ``query`` (exact search), by
        :meth:`similarity`: with equal weights, the nearest by the ``"normalised"``
        distance that ``mdsim evaluate`` scores by default.

        Parameters
        ----------
        query : Embedding or (D,) vector
        catalog : :class:`mdsim.search.Catalog`, or dict ``{name: Embedding or (D,) vector}``
            A dict is indexed (a flat :class:`~mdsim.search.Catalog`) on every
            call; for repeated queries build a ``Catalog`` once and pass it.
        Returns
        -------
        list of (name, similarity), most similar first.
        """
        from mdsim.search.catalog import Catalog, Filters

        keep_all = Filters(exclude_query=False)
        dims = self.check_dims(dims if dims is not None else (list(weights) if weights else None))
        w = self._weights(dims, weights)
        if isinstance(catalog, Catalog):
            if isinstance(query, np.ndarray):
                query = Embedding(np.asarray(query, np.float32), self.dimensions, self.slices)
            hits = catalog.search(query, weights=w, k=k, filters=keep_all)
            return [(h.track_id, h.score) for h in hits]
        names = list(catalog)
        if not names:
            return []
        q = self._as_vectors(query, dims)
        widths = [len(q[d]) for d in dims]
        bounds = np.cumsum([0] + widths)
        rows = np.stack([np.concatenate([self._as_vectors(catalog[n], [d])[d] for d in dims]) for n in names])
        index = Catalog(names, rows, dimensions=dims, slices=list(zip(bounds[:-1], bounds[1:])))
        hits = index.search(np.concatenate([q[d] for d in dims]), weights=w, k=k, filters=keep_all)
        return [(h.track_id, h.score) for h in hits]

    @staticmethod
    def _weights(dims, weights) -> dict:
        if weights is None:
            return {d: 1.0 for d in dims}
        unknown = [d for d in weights if d not in dims]
        if unknown:
            raise InputError(f"weights name dimension(s) {', '.join(unknown)} not selected ({', '.join(dims)})")
        w = {d: float(weights.get(d, 0.0)) for d in dims}
        if any(v < 0 for v in w.values()) or sum(w.values()) <= 0:
            raise InputError(f"weights must be non-negative with a positive sum, got {weights}")
        return w


def load_model(path=None) -> Model:
    """Load a model saved by ``mdsim train`` (a ``.keras`` file); with no argument, or
    ``"default"``, the default model that ships in the package (``docs/default_model.md``).

    Raises
    ------
    mdsim.errors.ModelError
        Missing file, not an mdsim model, or saved by a newer format version.
    """
    from mdsim.model import load_model_file
    from mdsim.models import model_path

    path = model_path(path)
    keras_model, config = load_model_file(path)
    return Model(keras_model, config, path=path)
