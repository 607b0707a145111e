"""A searchable catalog: one FAISS index answers every weighting of the subspaces.

Each catalog vector is stored with every subspace block L2-normalised
(``x̂_k = x_k / ‖x_k‖``; a zero block stays zero). A query is normalised the
same way and its block ``k`` scaled by ``w_k / Σ w``; the inner product is then

    ⟨q, x̂⟩ = Σ_k (w_k / Σ w) · cos_k(q, x)

exactly: the weighted mean of per-subspace cosines that
:meth:`mdsim.api.Model.similarity` computes (docs/method.md, "Distance in a set
of subspaces"). A weight of 0 removes a subspace from the ranking, so one
index serves "like this in mood and tempo, whatever the genre".

Labels (tags, tempo, key), group (e.g. artist) and source path travel with
each track; :class:`Filters` use them. A catalog is saved as a folder
(docs/search.md, "Catalog folder").

>>> import numpy as np
>>> from mdsim.search import Catalog
>>> cat = Catalog(["a", "b", "c"], [[1, 0, 1, 0], [1, 0, 0, 1], [0, 1, 1, 0]],
...               dimensions=["mood", "tempo"])
>>> [(h.track_id, round(h.score, 3)) for h in cat.search("a", weights={"mood": 1})]
[('b', 1.0), ('c', 0.0)]
>>> [(h.track_id, round(h.score, 3)) for h in cat.search("a", weights={"tempo": 1})]
[('c', 1.0), ('b', 0.0)]
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mdsim.errors import InputError, StoreError
from mdsim.labels import TAG_DIMENSIONS, key_harmonic, key_name, key_similar, parse_key
from mdsim.search.tempo_order import TempoOrder, in_bands, intersect_bands, tolerance_bands

FORMAT_NAME = "mdsim-catalog"
FORMAT_VERSION = 1
#: Norms are floored at this: a zero block stays zero and has cosine 0 with anything.
NORM_FLOOR = 1e-12
#: With filters leaving at most this many rows, the allowed rows are scored exactly in
#: NumPy instead of asking the index (exact even for an approximate index, and faster).
SMALL_SUBSET = 4096
#: A tempo filter whose bands hold at most this share of a flat catalog is answered from
#: its rows sorted by tempo, a wider one through the index: at 10^6 tracks the sorted rows
#: took 0.57x FAISS's time for a quarter of them, 0.75x for half, 1.24x for all.
TEMPO_BLOCKS_SHARE = 0.5


#: The catalog's data files; ``catalog.json`` records the SHA-256 of each.
CHECKSUMMED = ("index.faiss", "tracks.h5")


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, as hex."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check_files(path: Path, expected: dict | None) -> None:
    """Refuse a catalog whose data files differ from the checksums its ``catalog.json``
    records (a catalog written before checksums, without them, is read as it is)."""
    for name, digest in (expected or {}).items():
        if name in CHECKSUMMED and file_sha256(path / name) != digest:
            raise StoreError(f"{path / name} is damaged: it does not match the checksum in {path / 'catalog.json'}; "
                             f"rebuild the catalog with `mdsim index EMBEDDINGS.h5 --out {path}`")


def audio_root_of(sources) -> str:
    """The deepest folder holding every path of ``sources``; ``""`` when there is none, or
    when a path is relative already (it is then kept as given, relative to the served root)."""
    given = [s for s in sources if s]
    if not given or not all(os.path.isabs(s) for s in given):
        return ""
    return os.path.commonpath([os.path.dirname(s) for s in given])


def relative_to_root(sources, root: str) -> list:
    """Each absolute path of ``sources`` under ``root`` relative to it, in POSIX form; others as they are."""
    if not root:
        return list(sources)
    return [Path(os.path.relpath(s, root)).as_posix() if s and os.path.isabs(s) else s for s in sources]


def find_audio(source: str, roots) -> Path | None:
    """The file that a catalog's ``source`` path names, looked for under ``roots``.

    A catalog copied to another machine or folder keeps the paths where its audio was
    found; given the folder it now lives in, a path is tried as it is, then each of its
    tails under each root, longest first: ``/old/music/sub/a.ogg`` is
    ``ROOT/music/sub/a.ogg``, ``ROOT/sub/a.ogg`` or ``ROOT/a.ogg``. ``None`` when no file
    is found; the path itself when it is a file outside every root and no tail is found.
    The caller checks that the file (symlinks resolved) lies under a root."""
    if not source:
        return None
    path = Path(source)
    if path.is_absolute() and path.is_file() and any(path.is_relative_to(root) for root in roots):
        return path
    parts = path.parts[1:] if path.is_absolute() else path.parts
    for i in range(len(parts)):
        for root in roots:
            candidate = Path(root).joinpath(*parts[i:])
            if candidate.is_file():
                return candidate
    return path if path.is_absolute() and path.is_file() else None


@dataclass(frozen=True)
class Filters:
    """Which catalog tracks a search may return.

    Attributes
    ----------
    exclude_query : bool
        Leave out the query itself when it is a catalog track (default).
    exclude_group : bool
        Leave out tracks of the query's group (e.g. the same artist); needs
        a query from the catalog or ``query_group``.
    query_group : str, optional
        The group of a query from outside the catalog.
    tempo_range : (low, high), optional
        Keep tracks whose tempo, in BPM, lies in ``[low, high]``; tracks of
        unknown tempo are left out.
    key : str or int, optional
        Keep tracks in this key (``"F# minor"`` or a key index).
    key_compatible : bool
        With ``key``: also the parallel key (``mdsim.labels.key_similar``);
        without ``key``: tracks whose key is the query's or its parallel.
    min_score : float, optional
        Drop results scoring below this (weighted mean cosine, -1 to 1).
    tempo_tolerance : float, optional
        Keep tracks whose tempo is within this many percent of the query's
        tempo, of half of it or of double it (``query_tempo``, or the query
        track's); tracks of unknown tempo are left out.
    harmonic : bool
        Keep tracks whose key mixes with the query's (or ``key``) by the
        Camelot wheel (``mdsim.labels.key_harmonic``: the key, its relative
        major/minor, one fifth up or down).
    max_per_group : int, optional
        At most this many results of one group (e.g. artist); the best ranked
        are kept. Tracks without a group are not limited.
    dedupe : float, optional
        Drop a result whose similarity to a better-ranked result that was
        kept, or to a query track, is at least this (-1 to 1): the equal-weight mean of
        per-subspace cosines over all subspaces, whatever the weights, so
        that a different version of a track is caught whatever is searched for.
    exclude_ids : tuple of str
        Never return these tracks (ids the catalog lacks are ignored).
    played : tuple of str
        Tracks already chosen (a playlist so far): never returned, and counted
        by ``max_per_group`` and ``dedupe`` as if ranked before the first result.
    query_key, query_tempo : optional
        Key (name or index) and tempo (BPM) of a query from outside the
        catalog, for ``key_compatible``, ``harmonic`` and ``tempo_tolerance``;
        they win over the query track's own.

    With several seed tracks as the query, each seed is left out, the groups
    of all seeds with ``exclude_group``, and the first seed gives the key and
    tempo the filters compare with.
    """

    exclude_query: bool = True
    exclude_group: bool = False
    query_group: str | None = None
    tempo_range: tuple | None = None
    key: str | int | None = None
    key_compatible: bool = False
    min_score: float | None = None
    tempo_tolerance: float | None = None
    harmonic: bool = False
    max_per_group: int | None = None
    dedupe: float | None = None
    exclude_ids: tuple = ()
    played: tuple = ()
    query_key: str | int | None = None
    query_tempo: float | None = None

    def __post_init__(self):
        object.__setattr__(self, "exclude_ids", tuple(str(t) for t in self.exclude_ids))
        object.__setattr__(self, "played", tuple(str(t) for t in self.played))
        if self.tempo_tolerance is not None:
            tolerance = float(self.tempo_tolerance)
            if not 0 <= tolerance < 100:
                raise InputError(f"tempo tolerance is a percentage from 0 to 100, got {self.tempo_tolerance}")
            object.__setattr__(self, "tempo_tolerance", tolerance)
        if self.max_per_group is not None:
            if int(self.max_per_group) != self.max_per_group or self.max_per_group < 1:
                raise InputError(f"max_per_group must be a whole number, 1 or more, got {self.max_per_group}")
            object.__setattr__(self, "max_per_group", int(self.max_per_group))
        if self.dedupe is not None:
            if not -1 <= float(self.dedupe) <= 1:
                raise InputError(f"dedupe is a mean cosine, from -1 to 1 (e.g. 0.95), got {self.dedupe}")
            object.__setattr__(self, "dedupe", float(self.dedupe))
        if isinstance(self.query_key, str):
            object.__setattr__(self, "query_key", parse_key(self.query_key))
        if self.query_tempo is not None:
            tempo = float(self.query_tempo)
            if not tempo > 0:
                raise InputError(f"query tempo must be a positive BPM, got {self.query_tempo}")
            object.__setattr__(self, "query_tempo", tempo)
        if self.tempo_range is not None:
            low, high = (float(t) for t in self.tempo_range)
            if not 0 <= low <= high:
                raise InputError(f"tempo range must be 0 <= low <= high BPM, got {self.tempo_range}")
            object.__setattr__(self, "tempo_range", (low, high))
        if isinstance(self.key, str):
            index = parse_key(self.key)
            if index is None:
                raise InputError(f"cannot filter by an empty key {self.key!r}: give e.g. 'A minor'")
            object.__setattr__(self, "key", index)
        if self.min_score is not None:
            score = float(self.min_score)
            if not -1 <= score <= 1:  # NaN fails too
                raise InputError(f"a minimum score is a weighted mean cosine, from -1 to 1; got {self.min_score}")
            object.__setattr__(self, "min_score", score)


@dataclass
class Hit:
    """One search result.

    ``score`` is the weighted mean cosine (what the ranking uses);
    ``scores`` the cosine in every subspace of the catalog, weighted or not.
    ``labels`` follows :mod:`mdsim.labels` (tag lists, tempo in BPM or
    ``None``, key index or ``None``).
    """

    rank: int
    track_id: str
    score: float
    scores: dict
    labels: dict = field(default_factory=dict)
    group: str = ""
    source_path: str = ""

    def to_dict(self) -> dict:
        """JSON-ready, with the key also spelled out (``key_name``)."""
        return {"rank": self.rank, "track_id": self.track_id, "score": self.score, "scores": self.scores,
                "labels": self.labels, "key_name": key_name(self.labels.get("key")),
                "group": self.group, "source_path": self.source_path}


def normalise_blocks(x: np.ndarray, slices) -> np.ndarray:
    """Copy of ``x`` (float32 ``(n, D)``) with each ``[a, b)`` column block L2-normalised."""
    out = np.array(x, dtype=np.float32, ndmin=2, copy=True)
    for a, b in slices:
        norms = np.linalg.norm(out[:, a:b], axis=1, keepdims=True)
        out[:, a:b] /= np.maximum(norms, NORM_FLOOR)
    return out


def _as_labels(value) -> dict:
    """The labels contract from a partial mapping (missing: no tag, unknown tempo and key)."""
    value = dict(value or {})
    labels = {d: list(value.get(d) or []) for d in TAG_DIMENSIONS}
    tempo = value.get("tempo")
    labels["tempo"] = float(tempo) if tempo is not None and np.isfinite(tempo) and tempo > 0 else None
    key = value.get("key")
    labels["key"] = (parse_key(key) if isinstance(key, str) else int(key)) if key is not None else None
    if labels["key"] is not None and labels["key"] < 0:
        labels["key"] = None
    return labels


class Catalog:
    """Track vectors, their labels, and an index for weighted per-subspace search.

    Parameters
    ----------
    track_ids : sequence of str [shape=(N,)], unique
    vectors : array [shape=(N, D)]
        Raw embeddings (normalised per block here).
    dimensions : sequence of str
        Subspace names; ``slices`` their ``[start, stop)`` columns (default:
        equal contiguous slices). Columns outside every slice are dropped.
    labels, groups, sources : mapping of track id to labels / group / source path, optional
    index : str or :class:`~mdsim.search.index.IndexSpec`
        ``"flat"`` (exact, default) or ``"hnsw"`` (approximate).
    metadata : dict, optional
        JSON-serialisable facts (the model's path and ``model_sha256``).
    """

    #: A flat catalog answers a tempo filter (keeping at most ``TEMPO_BLOCKS_SHARE`` of its
    #: rows) from its rows sorted by tempo (:meth:`tempo_order`, a second copy of the vectors
    #: built on the first such query); ``False`` asks the index with a mask of the allowed
    #: rows instead (no copy, slower).
    tempo_sorted: bool = True

    def __init__(self, track_ids, vectors, *, dimensions, slices=None, labels=None, groups=None,
                 sources=None, index="flat", metadata=None):
        from mdsim.evaluation.embeddings import check_layout
        from mdsim.search import index as faiss_index

        x = np.asarray(vectors, dtype=np.float32)
        if x.ndim != 2:
            raise InputError(f"catalog vectors must be (N, D), got shape {x.shape}")
        dims, slices = check_layout(dimensions, slices, x.shape[1])
        if not dims:
            raise InputError("a catalog needs named subspaces (dimensions=[...])")
        self.dimensions = dims
        widths = [b - a for a, b in slices]
        starts = np.cumsum([0] + widths)
        #: ``{dimension: (start, stop)}`` in the catalog's (compacted) vectors.
        self.slices = {d: (int(a), int(b)) for d, a, b in zip(dims, starts[:-1], starts[1:])}
        self.spec = index if isinstance(index, faiss_index.IndexSpec) else faiss_index.IndexSpec(kind=index)
        self.metadata = dict(metadata or {})
        self.folder = None
        self._ids = np.zeros(0, dtype=str)
        self._pos = {}
        self._tags, self._tempo, self._key = [], np.zeros(0), np.zeros(0, np.int16)
        self._group, self._source = np.zeros(0, dtype=str), np.zeros(0, dtype=str)
        self._index = faiss_index.build(self.spec, np.zeros((0, int(starts[-1])), np.float32))
        compact = np.concatenate([x[:, a:b] for a, b in slices], axis=1)
        self.add(track_ids, compact, labels=labels, groups=groups, sources=sources)

    # -- contents ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, track_id) -> bool:
        return track_id in self._pos

    def __repr__(self):
        return f"<mdsim.Catalog {len(self)} tracks, {self.spec.kind}, dims={','.join(self.dimensions)}>"

    @property
    def track_ids(self) -> list:
        return self._ids.tolist()

    @property
    def width(self) -> int:
        return max(b for _, b in self.slices.values())

    def vectors(self) -> np.ndarray:
        """Block-normalised vectors, ``(N, D)`` float32 (a read-only view into the index)."""
        from mdsim.search import index as faiss_index

        view = faiss_index.rows(self._index)
        view.flags.writeable = False
        return view

    def position(self, track_id) -> int:
        try:
            return self._pos[track_id]
        except KeyError:
            raise InputError(f"no track {track_id!r} in the catalog ({len(self)} tracks)") from None

    def labels(self, track_id) -> dict:
        """The track's labels (tags, tempo, key index)."""
        i = self.position(track_id)
        return self._labels_at(i)

    def _labels_at(self, i: int) -> dict:
        labels = {d: list(self._tags[i].get(d, [])) for d in TAG_DIMENSIONS}
        labels["tempo"] = float(self._tempo[i]) if np.isfinite(self._tempo[i]) else None
        labels["key"] = int(self._key[i]) if self._key[i] >= 0 else None
        return labels

    def info(self, track_id) -> dict:
        """Labels, group and source path of a track."""
        i = self.position(track_id)
        return {"track_id": track_id, "labels": self._labels_at(i), "group": str(self._group[i]),
                "source_path": str(self._source[i])}

    # -- changing ------------------------------------------------------------------------
    def add(self, track_ids, vectors, *, labels=None, groups=None, sources=None) -> None:
        """Add tracks: raw ``(n, D)`` vectors in the catalog's layout (its subspaces, in
        order, contiguous; see :attr:`slices`), normalised here. The index grows in
        place: no rebuild. Ids already in the catalog are refused."""
        from mdsim.search import index as faiss_index

        ids = np.asarray(list(track_ids), dtype=str).reshape(-1)
        x = np.asarray(vectors, dtype=np.float32)
        if x.ndim != 2 or x.shape != (len(ids), self.width):
            raise InputError(f"{len(ids)} track ids and vectors of shape {x.shape}: expected "
                             f"({len(ids)}, {self.width}) vectors in the catalog's layout")
        if not np.isfinite(x).all():
            raise InputError("catalog vectors must be finite")
        unique, counts = np.unique(ids, return_counts=True)
        twice = [t for t in unique[counts > 1]] + [t for t in ids if t in self._pos]
        if twice:
            raise InputError(f"track id(s) already in the catalog or given twice: {', '.join(twice[:5])}; "
                             "remove them first to replace them")
        labels, groups, sources = labels or {}, groups or {}, sources or {}
        new_labels = [_as_labels(labels.get(t)) for t in ids]
        faiss_index.add(self._index, normalise_blocks(x, self.slices.values()))
        start = len(self._ids)
        self._ids = np.concatenate([self._ids, ids])
        self._pos.update({t: start + i for i, t in enumerate(ids.tolist())})
        self._tags += [{d: lab[d] for d in TAG_DIMENSIONS if lab[d]} for lab in new_labels]
        self._tempo = np.concatenate([self._tempo, [np.nan if lab["tempo"] is None else lab["tempo"]
                                                    for lab in new_labels]])
        self._key = np.concatenate([self._key, np.array([-1 if lab["key"] is None else lab["key"]
                                                         for lab in new_labels], np.int16)])
        self._group = np.concatenate([self._group, np.array([str(groups.get(t, "")) for t in ids], dtype=str)])
        self._source = np.concatenate([self._source, np.array([str(sources.get(t, "")) for t in ids], dtype=str)])
        self._tempo_order = None

    def remove(self, track_ids) -> None:
        """Remove tracks by id. Flat: in place, no rebuild; HNSW: the graph is rebuilt."""
        from mdsim.search import index as faiss_index

        positions = np.array(sorted({self.position(t) for t in track_ids}), dtype=np.int64)
        if not len(positions):
            return
        self._index = faiss_index.remove(self.spec, self._index, positions)
        self._ids = np.delete(self._ids, positions)
        self._pos = {t: i for i, t in enumerate(self._ids.tolist())}
        gone = set(positions.tolist())
        self._tags = [t for i, t in enumerate(self._tags) if i not in gone]
        self._tempo, self._key = np.delete(self._tempo, positions), np.delete(self._key, positions)
        self._group, self._source = np.delete(self._group, positions), np.delete(self._source, positions)
        self._tempo_order = None

    # -- searching -----------------------------------------------------------------------
    def weights(self, *, dims=None, weights=None) -> np.ndarray:
        """Per-dimension weights in catalog order, summing to 1.

        ``weights`` (``{dimension: w >= 0}``, others 0) wins over ``dims``
        (equal weights on those); neither: equal weights on all.
        """
        if weights is not None:
            unknown = [d for d in weights if d not in self.dimensions]
            if unknown:
                raise InputError(f"weights name dimension(s) {', '.join(map(repr, unknown))} not in the catalog "
                                 f"({', '.join(self.dimensions)})")
            w = np.array([float(weights.get(d, 0.0)) for d in self.dimensions])
        else:
            chosen = self.dimensions if dims is None else list(dims)
            unknown = [d for d in chosen if d not in self.dimensions]
            if unknown:
                raise InputError(f"unknown dimension(s) {', '.join(map(repr, unknown))} (catalog has "
                                 f"{', '.join(self.dimensions)})")
            w = np.array([1.0 if d in chosen else 0.0 for d in self.dimensions])
        if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise InputError(f"weights must be non-negative with a positive sum, got {weights or dims}")
        return w / w.sum()

    def query_vector(self, query) -> np.ndarray:
        """A query as a block-normalised ``(D,)`` catalog vector.

        ``query`` is a catalog track id, a list of them (seeds: the mean of their
        block-normalised vectors, normalised again), an :class:`mdsim.api.Embedding`
        (matched by dimension name; subspaces it lacks are zero), or a raw
        ``(D,)`` vector in the catalog's layout.
        """
        if isinstance(query, str):
            return self.vectors()[self.position(query)].copy()
        seeds = self._seed_positions(query)
        if seeds is not None:  # the mean direction of the seeds, in every subspace
            return normalise_blocks(self.vectors()[seeds].mean(axis=0)[None], self.slices.values())[0]
        if hasattr(query, "slices") and hasattr(query, "vectors"):
            v = np.zeros(self.width, np.float32)
            for d, (a, b) in self.slices.items():
                if d in query.slices:
                    part = np.asarray(query.vectors, np.float32)[..., query.slices[d]]
                    if part.shape != (b - a,):
                        raise InputError(f"query's {d} subspace has shape {part.shape}, the catalog's "
                                         f"({b - a},): embed in track mode with the catalog's model")
                    v[a:b] = part
            return normalise_blocks(v[None], self.slices.values())[0]
        v = np.asarray(query, dtype=np.float32)
        if v.shape != (self.width,):
            raise InputError(f"query vector has shape {v.shape}, the catalog's vectors ({self.width},); "
                             "give a track id, an Embedding or a vector in the catalog's layout")
        return normalise_blocks(v[None], self.slices.values())[0]

    def scale(self, queries: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Block-normalised queries ``(n, D)`` with block k multiplied by ``w[k]``."""
        out = np.array(queries, dtype=np.float32, ndmin=2, copy=True)
        for wk, (a, b) in zip(w, self.slices.values()):
            out[:, a:b] *= wk
        return out

    def allowed(self, filters: Filters, *, query_position=None) -> np.ndarray | None:
        """Boolean mask of the rows ``filters`` lets through (``None``: all of them).
        ``query_position`` is the query track's row, or the rows of several seeds
        (the first one gives the key and tempo compared with)."""
        seeds = [] if query_position is None else np.atleast_1d(query_position).astype(int).tolist()
        bands = self._tempo_bands(filters, seeds)
        keep = self._keep(filters, seeds)
        if bands is not None:
            keep &= in_bands(self._tempo, bands)
        return None if keep.all() else keep

    def _tempo_bands(self, filters: Filters, seeds) -> list | None:
        """The closed BPM bands that the tempo filters keep (``None``: no tempo filter)."""
        bands = None if filters.tempo_range is None else [filters.tempo_range]
        if filters.tempo_tolerance is not None:
            tempo = filters.query_tempo if filters.query_tempo is not None else (
                self._tempo[seeds[0]] if seeds else np.nan)
            if not np.isfinite(tempo):
                raise InputError("a tempo tolerance needs a query of known tempo: give query_tempo=120")
            near = tolerance_bands(float(tempo), filters.tempo_tolerance)
            bands = near if bands is None else intersect_bands(bands, near)
        return bands

    def _keep(self, filters: Filters, seeds, rows=None) -> np.ndarray:
        """Mask over ``rows`` (catalog rows, int; default all) of every filter on labels
        but tempo: the query, excluded and played ids, the query's group, keys."""
        n = len(self) if rows is None else len(rows)
        keep = np.ones(n, dtype=bool)
        out = seeds if filters.exclude_query else []
        out = out + [self._pos[t] for t in filters.exclude_ids + filters.played if t in self._pos]
        if out:
            if rows is None:
                keep[out] = False
            else:
                keep &= ~np.isin(rows, out)
        if filters.exclude_group:
            group = self._group if rows is None else self._group[rows]
            groups = ([filters.query_group] if filters.query_group is not None
                      else [str(self._group[i]) for i in seeds])
            for g in filter(None, groups):
                keep &= group != g
        reference = filters.key
        if reference is None and (filters.key_compatible or filters.harmonic):
            reference = filters.query_key if filters.query_key is not None else (
                int(self._key[seeds[0]]) if seeds and self._key[seeds[0]] >= 0 else None)
            if reference is None:
                raise InputError("a key-compatible filter needs a query of known key: give key='A minor'")
        if reference is not None:
            key = self._key if rows is None else self._key[rows]
            known = key >= 0
            rule = key_harmonic if filters.harmonic else key_similar if filters.key_compatible else None
            if rule is not None:
                keep &= known & np.array([rule(int(k), reference) for k in range(24)])[np.where(known, key, 0)]
            else:
                keep &= key == reference
        return keep

    def tempo_order(self) -> TempoOrder:
        """The catalog's rows sorted by tempo (:mod:`mdsim.search.tempo_order`), built on
        first use and kept until tracks are added or removed: a second copy of the vectors."""
        if self._tempo_order is None:
            self._tempo_order = TempoOrder(self._tempo, self.vectors())
        return self._tempo_order

    def search_vectors(self, queries, *, dims=None, weights=None, k: int = 10, allowed=None):
        """Batch search with normalised ``(n, D)`` query vectors (the benchmark's entry).

        Returns ``(scores, positions)``, ``(n, k)`` each (``k`` at most the
        catalog's size), best first; scores are weighted mean cosines,
        position -1 where fewer than ``k`` rows are allowed.
        """
        from mdsim.search import index as faiss_index

        k = int(k)
        if k < 1:
            raise InputError(f"k must be 1 or more, got {k}")
        k = min(k, max(len(self), 1))  # more results than rows is the whole catalog, not a huge allocation
        q = self.scale(queries, self.weights(dims=dims, weights=weights))
        if allowed is not None and allowed.sum() <= SMALL_SUBSET:
            rows = np.flatnonzero(allowed)
            s = q @ self.vectors()[rows].T
            order = np.argsort(-s, axis=1, kind="stable")[:, :k]
            scores = np.take_along_axis(s, order, axis=1)
            positions = rows[order]
            pad = k - positions.shape[1]
            if pad > 0:
                scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
                positions = np.pad(positions, ((0, 0), (0, pad)), constant_values=-1)
            return scores.astype(np.float32), positions.astype(np.int64)
        return faiss_index.search(self.spec, self._index, q, k, allowed=allowed)

    def search(self, query, *, dims=None, weights=None, k: int = 10, filters: Filters | None = None) -> list:
        """The ``k`` tracks most similar to ``query`` by the weighted mean of per-subspace cosines.

        Parameters
        ----------
        query : str, list of str, Embedding or np.ndarray
            A catalog track id, several (seeds, each left out of the results),
            an embedding of an outside track, or a vector (see :meth:`query_vector`).
        dims, weights
            The subspaces that count (see :meth:`weights`).
        k : int
            Results wanted (fewer when filters leave fewer tracks).
        filters : Filters, optional

        Returns
        -------
        list of Hit, best first.
        """
        filters = filters or Filters()
        seeds = self._seed_positions(query)
        position = self._pos.get(query) if isinstance(query, str) else seeds
        q = self.query_vector(query)
        k = int(k)
        if k < 1:
            raise InputError(f"k must be 1 or more, got {k}")
        seed_rows = [] if position is None else np.atleast_1d(position).astype(int).tolist()
        bands = self._tempo_bands(filters, seed_rows)
        blocks = None
        if bands is not None and self.tempo_sorted and self.spec.kind == "flat":
            blocks = self.tempo_order().blocks(bands)
            if sum(stop - start for start, stop in blocks) > TEMPO_BLOCKS_SHARE * len(self):
                blocks = None
        if blocks is not None:
            available, top = self._tempo_ranking(q, filters, seed_rows, blocks, dims=dims, weights=weights)
        else:
            allowed = self.allowed(filters, query_position=position)
            available = len(self) if allowed is None else int(allowed.sum())

            def top(fetch):
                scores, positions = self.search_vectors(q[None], dims=dims, weights=weights, k=fetch, allowed=allowed)
                return scores[0], positions[0]
        # Rows that count as ranked before the first result: for duplicates, the query's
        # seeds and the played tracks; for groups, the played tracks.
        played = [self.position(t) for t in filters.played]
        before = (seed_rows if filters.exclude_query else []) + played
        if not available:
            return []
        # Filters that look at the ranking (a cap per group, duplicates) drop some of the
        # best candidates: fetch more, and more again until k are kept or none are left.
        reranks = filters.max_per_group is not None or filters.dedupe is not None
        fetch = min(available, 4 * k if reranks else k)
        while True:
            scores, positions = top(fetch)
            chosen = self._select(scores, positions, filters, k, before=before, counted=played)
            exhausted = fetch >= available or (positions < 0).any() or (
                filters.min_score is not None and scores[-1] < filters.min_score)
            if len(chosen) >= k or exhausted:
                break
            fetch = min(available, 4 * fetch)
        X = self.vectors()
        return [Hit(rank, str(self._ids[i]), float(score),
                    {d: float(X[i, a:b] @ q[a:b]) for d, (a, b) in self.slices.items()},
                    self._labels_at(i), str(self._group[i]), str(self._source[i]))
                for rank, (i, score) in enumerate(chosen, 1)]

    def _tempo_ranking(self, q, filters: Filters, seeds, blocks, *, dims, weights):
        """``(available, top)`` of a tempo-filtered query over the tempo-sorted rows: the
        rows of ``blocks`` (:meth:`TempoOrder.blocks`) are scored at once, one product a
        block, those the other filters keep are ``available``; ``top(n)`` gives their
        ``n`` best ``(scores, rows)``, best first (ties: lower row first)."""
        order = self.tempo_order()
        rows = order.rows(blocks)
        keep = self._keep(filters, seeds, rows)
        scores = order.scores(self.scale(q[None], self.weights(dims=dims, weights=weights))[0], blocks)
        if not keep.all():
            rows, scores = rows[keep], scores[keep]

        def top(n):
            best = np.argpartition(-scores, n - 1)[:n] if n < len(scores) else np.arange(len(scores))
            best = best[np.lexsort((rows[best], -scores[best]))]
            return scores[best], rows[best]
        return len(rows), top

    def _select(self, scores, positions, filters: Filters, k: int, *, before=(), counted=()) -> list:
        """``[(row, score)]``: the first ``k`` ranked candidates that ``min_score``,
        ``max_per_group`` and ``dedupe`` keep, taken greedily in rank order. Rows in
        ``before`` count as kept before the first for ``dedupe`` (another version of the
        query is not a result), those in ``counted`` for ``max_per_group``."""
        X = self.vectors()
        chosen, per_group = [], {}
        before = list(before)
        for i in counted:
            per_group[str(self._group[i])] = per_group.get(str(self._group[i]), 0) + 1
        for score, i in zip(scores, positions):
            if i < 0 or (filters.min_score is not None and score < filters.min_score):
                break
            group = str(self._group[i])
            if filters.max_per_group is not None and group and per_group.get(group, 0) >= filters.max_per_group:
                continue
            if filters.dedupe is not None and (chosen or before):
                # Blocks are unit vectors: the equal-weight mean cosine is the dot product / #subspaces.
                similar = X[before + [j for j, _ in chosen]] @ X[i] / len(self.dimensions)
                if (similar >= filters.dedupe).any():
                    continue
            chosen.append((int(i), float(score)))
            per_group[group] = per_group.get(group, 0) + 1
            if len(chosen) == k:
                break
        return chosen

    def _seed_positions(self, query) -> list | None:
        """Rows of a query given as a list of track ids (seeds); ``None`` for other queries."""
        if isinstance(query, (list, tuple)) and query and all(isinstance(t, str) for t in query):
            return [self.position(t) for t in query]
        return None

    # -- files ---------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write the catalog folder (``catalog.json``, ``tracks.h5``, ``index.faiss``),
        replacing an existing one only once the new one is complete."""
        import h5py

        from mdsim.search import index as faiss_index

        path = Path(path)
        if path.exists() and not (path / "catalog.json").is_file():
            raise InputError(f"{path} exists and is not a catalog folder: choose another --out")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent))
        try:
            faiss_index.write(self._index, tmp / "index.faiss")
            with h5py.File(tmp / "tracks.h5", "w") as f:
                text = h5py.string_dtype("utf-8")
                f.create_dataset("track_ids", data=self._ids.astype(object), dtype=text)
                f.create_dataset("tags", data=np.array([json.dumps(t) for t in self._tags], dtype=object),
                                 dtype=text)
                f.create_dataset("tempo", data=self._tempo)
                f.create_dataset("key_index", data=self._key)
                f.create_dataset("group", data=self._group.astype(object), dtype=text)
                # Relative to the folder the audio was found under: a catalog moved with its audio
                # is served with --audio-root NEW_FOLDER (find_audio); the root is kept for paths.
                root = audio_root_of(self._source.tolist())
                sources = relative_to_root(self._source.tolist(), root)
                f.create_dataset("source_path", data=np.array(sources, dtype=object), dtype=text)
            metadata = dict(self.metadata, audio_root=root) if root else \
                {k: v for k, v in self.metadata.items() if k != "audio_root"}
            head = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "n_tracks": len(self),
                    "dimensions": list(self.dimensions), "slices": [list(s) for s in self.slices.values()],
                    "index": self.spec.to_dict(), "metadata": metadata,
                    "sha256": {name: file_sha256(tmp / name) for name in CHECKSUMMED}}
            (tmp / "catalog.json").write_text(json.dumps(head, indent=2) + "\n")
            old = None
            if path.exists():
                old = path.with_name(tmp.name + ".old")
                os.rename(path, old)
            os.rename(tmp, path)
            if old is not None:
                shutil.rmtree(old)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
        self.folder = path
        return path

    @classmethod
    def load(cls, path) -> "Catalog":
        """Read a catalog folder written by :meth:`save` (or ``mdsim index``)."""
        import h5py

        from mdsim.search import index as faiss_index

        path = Path(path)
        if not (path / "catalog.json").is_file():
            raise StoreError(f"{path} is not a catalog (no catalog.json): build one with "
                             f"`mdsim index EMBEDDINGS.h5 --out {path}`")
        try:
            head = json.loads((path / "catalog.json").read_text())
            if head.get("format") != FORMAT_NAME:
                raise ValueError(f"format is {head.get('format')!r}")
            if int(head["format_version"]) > FORMAT_VERSION:
                raise StoreError(f"{path} has catalog format version {head['format_version']}; this mdsim "
                                 f"reads up to {FORMAT_VERSION}: upgrade mdsim")
            self = cls.__new__(cls)
            self.dimensions = tuple(head["dimensions"])
            self.slices = {d: tuple(s) for d, s in zip(self.dimensions, head["slices"])}
            self.spec = faiss_index.IndexSpec(**head["index"])
            self.metadata = head.get("metadata", {})
            #: The folder it was read from (its model is looked for there: search.build.catalog_model).
            self.folder = path
            _check_files(path, head.get("sha256"))
            self._index = faiss_index.read(path / "index.faiss")
            with h5py.File(path / "tracks.h5", "r") as f:
                self._ids = np.array(f["track_ids"].asstr()[()], dtype=str)
                self._tags = [json.loads(t) for t in f["tags"].asstr()[()]]
                self._tempo = f["tempo"][()]
                self._key = f["key_index"][()]
                self._group = np.array(f["group"].asstr()[()], dtype=str)
                sources = f["source_path"].asstr()[()].tolist()
            root = self.metadata.pop("audio_root", "")  # version-1 catalogs of earlier mdsim: absolute paths
            self._source = np.array([os.path.join(root, s) if root and s and not os.path.isabs(s) else s
                                     for s in sources], dtype=str)
        except StoreError:
            raise
        except (KeyError, ValueError, OSError, RuntimeError, TypeError) as e:
            raise StoreError(f"{path} is not a valid catalog: {e}") from e
        if self._index.ntotal != len(self._ids) or len(self._ids) != head["n_tracks"]:
            raise StoreError(f"{path}: the index holds {self._index.ntotal} vectors for {len(self._ids)} "
                             "tracks; rebuild it with `mdsim index`")
        self._pos = {t: i for i, t in enumerate(self._ids.tolist())}
        self._tempo_order = None
        return self

    @classmethod
    def from_embeddings(cls, embeddings, *, labels: Mapping | None = None, groups: Mapping | None = None,
                        sources: Mapping | None = None, index="flat") -> "Catalog":
        """A catalog of an :class:`mdsim.evaluation.EmbeddingSet` (or an embeddings file's path)."""
        from mdsim.evaluation import read_embeddings

        es = embeddings if hasattr(embeddings, "embeddings") else read_embeddings(embeddings)
        if not es.dimensions:
            raise InputError(f"embeddings {es.name or ''} have no named subspaces: a catalog searches by "
                             "subspace (write them with dimensions=[...])")
        meta = {k: es.metadata[k] for k in ("model", "model_sha256", "mode") if k in es.metadata}
        return cls(es.track_ids, es.embeddings, dimensions=es.dimensions, slices=es.slices, labels=labels,
                   groups=groups, sources=sources, index=index, metadata=meta)
