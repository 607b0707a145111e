"""Playlists from a catalog: continue from seed tracks, or walk from one track to another.

- :func:`continue_from`: ``n`` tracks, each the nearest unused track to the one
  before it (the first: nearest to the mean of the seeds), under the chosen
  subspace weights and filters.
- :func:`walk`: ``n`` tracks between ``start`` and ``end``: targets evenly
  spaced on the line from ``start``'s block-normalised vector to ``end``'s, each
  answered by the nearest unused track.
- :func:`write_m3u8`, :func:`write_json`: the playlist as files.

Filters compare with the track before (key, tempo, group): a playlist with
``harmonic=True`` mixes key-compatibly at every step. ``max_per_group`` and
``dedupe`` hold over the whole playlist, seeds included: at most that many tracks of
one artist, and no track that nearly duplicates one already in it.

>>> import numpy as np
>>> from mdsim.search import Catalog
>>> angles = np.radians([0, 10, 25, 45, 70])
>>> cat = Catalog(list("abcde"), np.stack([np.cos(angles), np.sin(angles)], axis=1), dimensions=["mood"])
>>> continue_from(cat, ["a"], n=3).track_ids   # each the nearest unused to the one before
['a', 'b', 'c', 'd']
>>> walk(cat, "a", "e", n=2).track_ids         # targets a third and two thirds of the way
['a', 'c', 'd', 'e']
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

from mdsim.errors import InputError
from mdsim.search.catalog import Catalog, Filters, Hit


@dataclass
class Playlist:
    """An ordered playlist.

    ``tracks`` are JSON-ready dicts in playing order: ``track_id``, ``role``
    (``"seed"``, ``"start"``, ``"end"`` or ``"next"``), ``score`` (weighted mean
    cosine to what the track answered: the track before, or the walk's target;
    ``None`` for seeds and ends), ``scores`` per subspace, ``labels``, ``key_name``,
    ``group``, ``source_path``.
    """

    mode: str
    weights: dict
    tracks: list

    @property
    def track_ids(self) -> list:
        return [t["track_id"] for t in self.tracks]

    def to_dict(self) -> dict:
        return {"mode": self.mode, "weights": self.weights, "tracks": self.tracks}


def continue_from(catalog: Catalog, seeds, *, n: int, dims=None, weights=None,
                  filters: Filters | None = None) -> Playlist:
    """The seeds, then ``n`` tracks, each the nearest unused one to the track before
    (the first: nearest to the mean of the seeds' block-normalised vectors). Fewer
    than ``n`` when the filters leave fewer tracks."""
    seeds = [seeds] if isinstance(seeds, str) else list(seeds)
    if not seeds:
        raise InputError("a playlist needs at least one seed track")
    _check(catalog, seeds, n)
    filters = filters or Filters()
    tracks = [_entry(catalog, t, "seed") for t in seeds]
    query = seeds if len(seeds) > 1 else seeds[0]
    for _ in range(n):
        hit = _next(catalog, query, tracks, dims=dims, weights=weights, filters=filters)
        if hit is None:
            break
        tracks.append(_entry(catalog, hit.track_id, "next", hit))
        query = hit.track_id
    return Playlist("continue", _weights(catalog, dims, weights), tracks)


def walk(catalog: Catalog, start: str, end: str, *, n: int, dims=None, weights=None,
         filters: Filters | None = None) -> Playlist:
    """``start``, ``n`` tracks, ``end``: step ``i`` of ``n`` is the nearest unused track to
    the target ``(1 - a) x̂_start + a x̂_end``, ``a = i / (n + 1)``, in the block-normalised
    vectors (each block normalised again: a point on the way in every subspace). The
    filters compare with the track before."""
    _check(catalog, [start, end], n)
    if start == end:
        raise InputError(f"a walk goes from one track to another: start and end are both {start!r}")
    filters = filters or Filters()
    a, b = catalog.query_vector(start), catalog.query_vector(end)
    tracks, last = [_entry(catalog, start, "start")], _entry(catalog, end, "end")
    for i in range(1, n + 1):
        t = i / (n + 1)
        group, labels = tracks[-1]["group"], tracks[-1]["labels"]  # the track before, unless given
        step = replace(filters, query_group=group if filters.query_group is None else filters.query_group,
                       query_key=labels["key"] if filters.query_key is None else filters.query_key,
                       query_tempo=labels["tempo"] if filters.query_tempo is None else filters.query_tempo)
        # the end is in the playlist already: unused, and counted for groups and duplicates
        hit = _next(catalog, (1 - t) * a + t * b, tracks + [last], dims=dims, weights=weights, filters=step)
        if hit is None:
            break
        tracks.append(_entry(catalog, hit.track_id, "next", hit))
    tracks.append(last)
    return Playlist("walk", _weights(catalog, dims, weights), tracks)


def _check(catalog: Catalog, ids, n) -> None:
    for t in ids:
        catalog.position(t)  # an unknown id is an InputError naming it
    if int(n) != n or n < 0:
        raise InputError(f"a playlist's length must be a whole number, 0 or more, got {n}")


def _weights(catalog: Catalog, dims, weights) -> dict:
    return {d: float(w) for d, w in zip(catalog.dimensions, catalog.weights(dims=dims, weights=weights))}


def _next(catalog: Catalog, query, tracks, *, dims, weights, filters: Filters) -> Hit | None:
    """The best-ranked track for ``query`` that is not in ``tracks``, whose group is not
    full (``max_per_group``) and that is no near duplicate (``dedupe``) of one of them."""
    played = replace(filters, played=filters.played + tuple(t["track_id"] for t in tracks))
    hits = catalog.search(query, dims=dims, weights=weights, k=1, filters=played)
    return hits[0] if hits else None


def _entry(catalog: Catalog, track_id: str, role: str, hit: Hit | None = None) -> dict:
    info = catalog.info(track_id)
    if hit is not None:
        entry = hit.to_dict()
        del entry["rank"]
    else:
        from mdsim.labels import key_name

        entry = dict(info, score=None, scores=None, key_name=key_name(info["labels"]["key"]))
    return dict(entry, role=role)


def write_m3u8(path, playlist: Playlist, *, audio_roots=()) -> Path:
    """An extended M3U playlist in UTF-8: ``#EXTINF`` (length unknown, ``-1``; the
    title ``group - track id``) and the audio path relative to the playlist's folder.
    A track without an audio path is written as a comment line. With ``audio_roots``
    (the folders a moved catalog's audio now lives in), each path is the file found
    there (:func:`mdsim.search.catalog.find_audio`), else the catalog's as it is."""
    from mdsim.search.catalog import find_audio

    path = Path(path)
    folder = path.parent.resolve()
    lines = ["#EXTM3U"]
    for t in playlist.tracks:
        title = f"{t['group']} - {t['track_id']}" if t["group"] else t["track_id"]
        if not t["source_path"]:
            lines.append(f"# {title}: no audio path in the catalog")
            continue
        audio = (find_audio(t["source_path"], audio_roots) if audio_roots else None) or t["source_path"]
        lines += [f"#EXTINF:-1,{title}", Path(os.path.relpath(os.path.abspath(audio), folder)).as_posix()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_json(path, playlist: Playlist) -> Path:
    """The playlist as JSON (:meth:`Playlist.to_dict`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(playlist.to_dict(), indent=2) + "\n", encoding="utf-8")
    return path


__all__ = ["Playlist", "continue_from", "walk", "write_m3u8", "write_json"]
