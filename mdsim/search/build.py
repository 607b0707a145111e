"""Building a catalog from what the pipeline writes, and embedding outside queries.

A catalog's vectors come from an embeddings file (``mdsim embed``) or from a
features store embedded by a model; its labels, groups and source paths from a
features store (``mdsim prep`` keeps them per track) or a manifest CSV.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mdsim.errors import InputError, ModelError
from mdsim.search.catalog import Catalog


def is_store(path) -> bool:
    """Whether ``path`` is a features store (HDF5 with ``format = "mdsim-features"``)."""
    path = Path(path)
    if not path.is_file():
        return False
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return str(f.attrs.get("format", "")) == "mdsim-features"
    except OSError:
        return False


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
    source = Path(source)
    if not source.is_file():
        raise InputError(f"{source}: no such embeddings file or features store")
    if is_store(source):
        if model is None:
            raise InputError(f"{source} is a features store: give --model to embed its tracks, "
                             "or index an embeddings file from `mdsim embed`")
        from mdsim.embed import store_embedding_set

        if not hasattr(model, "embed"):
            import mdsim

            model = mdsim.load_model(model)
        embeddings = store_embedding_set(model, source, progress=progress, log=log)
        embeddings.metadata.update(model=str(model.path), model_sha256=model.fingerprint, mode="track")
        info = source if info is None else info
    else:
        from mdsim.evaluation import read_embeddings

        embeddings = read_embeddings(source)
        if embeddings.metadata.get("mode", "track") != "track":
            # Segment files still hold one track vector per row in /embeddings.
            embeddings.metadata["mode"] = "track"
    labels = groups = sources = None
    if info is not None:
        info = Path(info)
        labels, groups, sources = (info_from_manifest(info) if info.suffix.lower() == ".csv"
                                   else info_from_store(info))
        missing = [t for t in embeddings.track_ids if t not in labels]
        if missing:
            print(f"index: {len(missing)} of {len(embeddings)} tracks have no entry in {info} "
                  f"(e.g. {missing[0]!r}); they are indexed without labels", file=log)
    return Catalog.from_embeddings(embeddings, labels=labels, groups=groups, sources=sources, index=index)


def query_embedding(catalog: Catalog, audio, *, model=None):
    """Embed an audio file (or ``(y, sr)``) for a search in ``catalog``.

    ``model`` (a :class:`mdsim.Model` or a path) defaults to the model the
    catalog records; a model other than the one that embedded the catalog
    (by ``model_sha256``) is refused, since vectors of two models never mix.
    """
    import mdsim

    if model is None:
        path = catalog.metadata.get("model")
        if not path or not Path(path).is_file():
            raise ModelError(f"the catalog does not name a model file that exists here ({path!r}): "
                             "give the model that embedded it (--model)")
        model = path
    if not hasattr(model, "embed"):
        model = mdsim.load_model(model)
    expected = catalog.metadata.get("model_sha256")
    if expected and expected != model.fingerprint:
        raise ModelError(f"{model.path} is not the model that embedded this catalog (its SHA-256 differs); "
                         f"use {catalog.metadata.get('model', 'that model')}")
    if isinstance(audio, tuple):
        y, sr = audio
        return model.embed(y, sr=sr)
    return model.embed(audio)
