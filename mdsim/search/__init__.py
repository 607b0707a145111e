"""Query by example over a catalog: a FAISS index, weighted per-subspace search, filters.

- :class:`Catalog`: vectors with each subspace L2-normalised, labels, group and
  source path per track; ``search(query, weights=..., k=..., filters=...)``;
  ``save``/``load`` a catalog folder; ``add``/``remove`` tracks.
- :class:`Filters`, :class:`Hit`: what a search may return, and what it returns.
- :func:`continue_from`, :func:`walk`: playlists from seed tracks, or from one track
  to another (:class:`Playlist`; ``write_m3u8``/``write_json`` in :mod:`mdsim.search.playlist`).
- :func:`build_catalog`: from an embeddings file or a features store + model;
  :func:`extend_catalog` adds a source's new tracks to a catalog, :func:`update_catalog`
  does that (and removals) to a catalog folder under its write lock.

``faiss`` is imported by :mod:`mdsim.search.index` only, when an index is built
or read: ``import mdsim.search`` stays light.
"""

from mdsim.search.build import build_catalog, catalog_model, extend_catalog, query_embedding, update_catalog
from mdsim.search.catalog import Catalog, Filters, Hit, normalise_blocks
from mdsim.search.playlist import Playlist, continue_from, walk

__all__ = ["Catalog", "Filters", "Hit", "Playlist", "build_catalog", "catalog_model", "continue_from", "extend_catalog",
           "query_embedding", "normalise_blocks", "update_catalog", "walk"]
