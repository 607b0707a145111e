"""Building a catalog from what the pipeline writes, and embedding outside queries.

A catalog's vectors come from an embeddings file (``mdsim embed``) or from a
features store embedded by a model; its labels, groups and source paths from a
features store (``mdsim prep`` keeps them per track) or a manifest CSV.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from mdsim.errors import InputError, ModelError
from mdsim.features.store import is_store
from mdsim.search.catalog import Catalog


def info_from_store(path) -> tuple[dict, dict, dict]:
    """``(labels, groups, sources)``, each ``{track_id: ...}``, of a features store's tracks."""
    from mdsim.features.store import FeatureStore

    labels, groups, sources = {}, {}, {}
    with FeatureStore(path) as store:
        for t in store.track_ids():
            attrs = store.attrs(t)
            labels[t] = store.labels(t)
            groups[t] = str(attrs.get("group", ""))
            sources[t] = str(attrs.get("source_path", ""))
    return labels, groups, sources


def info_from_manifest(path) -> tuple[dict, dict, dict]:
    """``(labels, groups, sources)`` of a manifest CSV's tracks (paths made absolute)."""
    from mdsim.manifest import read_manifest

    entries = read_manifest(path)
    return ({e.track_id: e.labels for e in entries}, {e.track_id: e.group for e in entries},
            {e.track_id: str(Path(e.path).resolve()) for e in entries})


def build_catalog(source, *, model=None, info=None, index="flat", progress: bool = True,
                  log=sys.stderr) -> Catalog:
    """A catalog of an embeddings file, or of a features store embedded by ``model``.

    Parameters
    ----------
    source : str or Path
        An embeddings file (``mdsim embed``) or a features store (``mdsim prep``).
    model : mdsim.Model or path, optional
        Required for a store: its tracks are embedded (track mode) first.
    info : str or Path, optional
        A features store or manifest CSV giving labels, groups and source
        paths; a store ``source`` is its own by default.
    index : str or IndexSpec
        ``"flat"`` (exact) or ``"hnsw"``.
    """
    embeddings, info = _read_source(source, model=model, info=info, progress=progress, log=log)
    labels, groups, sources = _read_info(info, embeddings.track_ids, log=log)
    return Catalog.from_embeddings(embeddings, labels=labels, groups=groups, sources=sources, index=index)


def extend_catalog(catalog: Catalog, source, *, model=None, info=None, progress: bool = True,
                   log=sys.stderr) -> list:
    """Add the tracks of ``source`` that ``catalog`` lacks, in place (no rebuild for a
    flat index); returns their ids. ``source``, ``model`` and ``info`` as for
    :func:`build_catalog`; ``model`` defaults to the catalog's, and a store is
    embedded for the new tracks only. Embeddings of another model (by
    ``model_sha256``) or with other subspaces are refused."""
    if model is None and is_store(source):
        model = catalog_model(catalog)
    embeddings, info = _read_source(source, model=model, info=info, progress=progress, log=log,
                                    skip=catalog)
    theirs, ours = embeddings.metadata.get("model_sha256"), catalog.metadata.get("model_sha256")
    if theirs and ours and theirs != ours:
        raise InputError(f"{source} was embedded by another model than the catalog "
                         f"({catalog.metadata.get('model', 'unknown')}): rebuild the catalog with `mdsim index`")
    widths = {d: b - a for d, (a, b) in zip(embeddings.dimensions, embeddings.slices)}
    if widths != {d: b - a for d, (a, b) in catalog.slices.items()}:
        raise InputError(f"{source} has subspaces {widths}, the catalog "
                         f"{ {d: b - a for d, (a, b) in catalog.slices.items()} }: they cannot share an index")
    new = [i for i, t in enumerate(embeddings.track_ids) if t not in catalog]
    ids = [str(embeddings.track_ids[i]) for i in new]
    if ids:
        where = dict(zip(embeddings.dimensions, embeddings.slices))
        x = embeddings.embeddings[new]
        compact = np.concatenate([x[:, where[d][0]:where[d][1]] for d in catalog.dimensions], axis=1)
        labels, groups, sources = _read_info(info, ids, log=log)
        catalog.add(ids, compact, labels=labels, groups=groups, sources=sources)
    return ids


def update_catalog(path, source=None, *, remove=(), model=None, info=None, progress: bool = True,
                   log=sys.stderr) -> tuple[list, Catalog]:
    """Add ``source``'s new tracks to the catalog folder ``path`` and remove the ids in
    ``remove``, under the catalog's write lock (``PATH.lock``, as ``mdsim prep`` and
    ``mdsim embed`` take theirs): two updates at once would each save the catalog they
    loaded, and the first one's tracks would be lost. ``source``, ``model`` and ``info``
    as for :func:`extend_catalog`.

    Returns ``(added ids, the saved catalog)``.

    Raises
    ------
    InputError
        When another process is writing the catalog (it fails at once, naming that process).
    """
    from mdsim.locking import exclusive_lock

    with exclusive_lock(path, what="mdsim index"):
        catalog = Catalog.load(path)
        added = (extend_catalog(catalog, source, model=model, info=info, progress=progress, log=log)
                 if source is not None else [])
        catalog.remove(list(remove))
        catalog.save(path)
    return added, catalog


def _read_source(source, *, model, info, progress, log, skip=None):
    """``(EmbeddingSet, info)`` of an embeddings file, or of a store embedded by ``model``
    (tracks in ``skip`` left out), whose ``info`` defaults to the store itself."""
    source = Path(source)
    if not source.is_file():
        raise InputError(f"{source}: no such embeddings file or features store")
    if is_store(source):
        if model is None:
            raise InputError(f"{source} is a features store: give --model to embed its tracks, "
                             "or index an embeddings file from `mdsim embed`")
        from mdsim.embed import store_embedding_set
        from mdsim.features.store import FeatureStore

        if not hasattr(model, "embed"):
            from mdsim.api import load_model

            model = load_model(model)
        with FeatureStore(source) as store:
            ids = [t for t in store.track_ids() if skip is None or t not in skip]
        embeddings = store_embedding_set(model, source, ids, progress=progress, log=log)
        embeddings.metadata.update(model=str(model.path), model_sha256=model.fingerprint, mode="track")
        return embeddings, source if info is None else info
    from mdsim.evaluation import read_embeddings

    # A segments file holds one track vector per row in /embeddings too.
    return read_embeddings(source), info


def info_from(path) -> tuple[dict, dict, dict]:
    """``(labels, groups, sources)`` of a features store or a manifest CSV."""
    if is_store(path):
        return info_from_store(path)
    if Path(path).suffix.lower() == ".csv":
        return info_from_manifest(path)
    raise InputError(f"{path} is neither a features store nor a manifest CSV: give the store from "
                     "`mdsim prep` or the manifest the tracks came from")


def _read_info(info, track_ids, *, log):
    """``(labels, groups, sources)`` from a store or manifest (``None``s without one),
    saying how many of ``track_ids`` it does not know."""
    if info is None:
        return None, None, None
    info = Path(info)
    labels, groups, sources = info_from(info)
    missing = [t for t in track_ids if t not in labels]
    if missing:
        print(f"index: {len(missing)} of {len(track_ids)} tracks have no entry in {info} "
              f"(e.g. {missing[0]!r}); they are indexed without labels", file=log)
    return labels, groups, sources


def catalog_model(catalog: Catalog, *, model=None):
    """The model that embedded ``catalog``, loaded: ``model`` (a :class:`mdsim.Model` or a
    path) when given, else the file the catalog names, looked for where it was (relative to
    the catalog folder) and then, by name or by content, among the ``.keras`` files in the
    catalog folder and the folder holding it, and last the default model (by content): a
    catalog copied with its model, or embedded by the default model, works anywhere.

    Raises
    ------
    ModelError
        When ``model`` is not the model that embedded the catalog (its SHA-256 differs from
        the catalog's ``model_sha256``), or when no such model is found (the line says where
        it was looked for).
    """
    from mdsim.api import load_model

    expected = catalog.metadata.get("model_sha256")
    if model is None:
        model = _find_model_file(catalog, expected)
    if not hasattr(model, "embed"):
        model = load_model(model)
    if expected and expected != model.fingerprint:
        raise ModelError(f"{model.path} is not the model that embedded this catalog (its SHA-256 is "
                         f"{model.fingerprint[:12]}..., the catalog's {expected[:12]}...); use "
                         f"{catalog.metadata.get('model', 'that model')}")
    return model


def _find_model_file(catalog: Catalog, expected) -> Path:
    from mdsim.search.catalog import file_sha256

    named = catalog.metadata.get("model")
    folder = catalog.folder
    places = [] if folder is None else [Path(folder), Path(folder).parent]
    candidates = []
    if named:
        candidates.append(Path(folder, named) if folder is not None else Path(named))
        candidates += [place / Path(named).name for place in places]
    candidates += [f for place in places for f in sorted(place.glob("*.keras"))]
    from mdsim.models import DEFAULT_MODEL

    if expected:  # the same file wherever mdsim is installed, taken only when its content is the catalog's
        candidates.append(DEFAULT_MODEL)
    for path in dict.fromkeys(candidates):  # in order, each once
        if path.is_file() and (not expected or file_sha256(path) == expected):
            return path
    where = ", ".join(str(p) for p in places) or "a catalog not read from a folder"
    raise ModelError(f"the catalog's model ({named or 'unnamed'}"
                     f"{', SHA-256 ' + expected[:12] + '...' if expected else ''}) is not found where it was "
                     f"written nor beside the catalog ({where}): give the model that embedded it (--model)")


def query_embedding(catalog: Catalog, audio, *, model=None):
    """Embed an audio file (or ``(y, sr)``) for a search in ``catalog``.

    ``model`` (a :class:`mdsim.Model` or a path) defaults to the model the
    catalog records (:func:`catalog_model`); a model other than the one that
    embedded the catalog (by ``model_sha256``) is refused, since vectors of two
    models never mix.
    """
    model = catalog_model(catalog, model=model)
    if isinstance(audio, tuple):
        y, sr = audio
        return model.embed(y, sr=sr)
    return model.embed(audio)
