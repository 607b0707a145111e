"""What `mdsim search` and the browse page share: reading weights, resolving a query,
and printing results.

>>> parse_weights("mood=1,tempo=0.5")
{'mood': 1.0, 'tempo': 0.5}
>>> parse_weights("mood,tempo")
{'mood': 1.0, 'tempo': 1.0}
"""

from __future__ import annotations

from pathlib import Path

from mdsim.errors import InputError
from mdsim.labels import TAG_DIMENSIONS, key_name


def parse_weights(text: str | None) -> dict | None:
    """``"mood=1,tempo=0.5"`` (or ``"mood,tempo"``: weight 1 each) to ``{dimension: weight}``;
    ``None`` or empty: ``None`` (all subspaces, equal weights)."""
    if not text or not text.strip():
        return None
    weights = {}
    for part in text.split(","):
        name, _, value = part.strip().partition("=")
        name = name.strip()
        if not name:
            raise InputError(f"cannot read weights {text!r}: write e.g. mood=1,tempo=0.5")
        try:
            weights[name] = float(value) if value.strip() else 1.0
        except ValueError:
            raise InputError(f"weight of {name!r} is {value!r}, not a number (e.g. {name}=0.5)") from None
    return weights


def parse_range(text: str | None) -> tuple | None:
    """``"90:120"`` (BPM) to ``(90.0, 120.0)``; an open end is ``:120`` or ``90:``."""
    if not text:
        return None
    low, sep, high = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return (float(low) if low.strip() else 0.0, float(high) if high.strip() else float("inf"))
    except ValueError:
        raise InputError(f"cannot read tempo range {text!r}: write LOW:HIGH in BPM, e.g. 90:120") from None


def resolve_query(catalog, query: str, *, model=None):
    """A catalog track id as is; an audio file embedded with the catalog's model."""
    if query in catalog:
        return query
    if Path(query).is_file():
        from mdsim.search.build import query_embedding

        return query_embedding(catalog, query, model=model)
    raise InputError(f"{query!r} is neither a track id of the catalog nor an audio file")


def resolve_queries(catalog, queries, *, model=None):
    """One query as :func:`resolve_query`; several: catalog track ids (seeds), as a list."""
    queries = [queries] if isinstance(queries, str) else list(queries)
    if len(queries) == 1:
        return resolve_query(catalog, queries[0], model=model)
    unknown = [q for q in queries if q not in catalog]
    if unknown:
        raise InputError(f"several queries are seed tracks of the catalog; {unknown[0]!r} is not one "
                         "(an audio file is searched alone)")
    return queries


def format_playlist(playlist) -> str:
    """A plain-text table of a :class:`~mdsim.search.playlist.Playlist`: position, role,
    track, score (to what it answered), labels."""
    rows = [[str(i), t["role"], t["track_id"], "" if t["score"] is None else f"{t['score']:.3f}",
             describe_labels(t["labels"])] for i, t in enumerate(playlist.tracks, 1)]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join([r[0].rjust(widths[0]), r[1].ljust(widths[1]), r[2].ljust(widths[2]),
                                r[3].rjust(widths[3]), r[4]]).rstrip() for r in rows)


def describe_labels(labels: dict) -> str:
    """One short line: tags by dimension, tempo, key."""
    parts = [f"{d}: {';'.join(labels[d])}" for d in TAG_DIMENSIONS if labels.get(d)]
    if labels.get("tempo") is not None:
        parts.append(f"{labels['tempo']:.0f} BPM")
    if labels.get("key") is not None:
        parts.append(key_name(labels["key"]))
    return ", ".join(parts)


def format_table(hits, dimensions) -> str:
    """A plain-text table: rank, track, score, the cosine per subspace, labels."""
    short = [d[:5] for d in dimensions]
    head = ["rank", "track", "score"] + short + ["labels"]
    rows = [[str(h.rank), h.track_id, f"{h.score:.3f}"] + [f"{h.scores[d]:.3f}" for d in dimensions]
            + [describe_labels(h.labels)] for h in hits]
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i in (1, len(head) - 1) else c.rjust(w)
                       for i, (c, w) in enumerate(zip(r, widths))).rstrip() for r in [head] + rows]
    return "\n".join(lines)
