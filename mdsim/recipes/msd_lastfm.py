"""Million Song Dataset Last.fm tags -> an ``mdsim prep`` manifest.

The Last.fm dataset comes in two published forms, both read here:

- a folder of JSON files, one per track: ``{"track_id": "TR...", "tags": [["rock", "100"],
  ["80s", "40"], ...], ...}`` (the number is a 0-100 weight);
- the SQLite file ``lastfm_tags.db`` with tables ``tids(tid)``, ``tags(tag)`` and
  ``tid_tag(tid, tag, val)``, where ``tid_tag.tid`` and ``tid_tag.tag`` are row ids of the
  other two tables.

Tags with a weight of at least ``--min-weight`` (default 50) are grouped into the tag
dimensions by ``mdsim/recipes/tag_groups.json`` (the default grouping of the top-50 tags; pass
``--groups`` for another). Audio previews are found in ``--audio`` by track id (any of
wav, flac, ogg, mp3, aiff, anywhere below it, the file's stem being the track id); tracks
without audio are counted and left out.

    python -m mdsim.recipes.msd_lastfm --tags lastfm_tags.db --audio previews/ --out manifest.csv
    python -m mdsim.recipes.msd_lastfm --tags lastfm_train/ --audio previews/ --out manifest.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import sqlite3
import sys
from pathlib import Path

from mdsim.audio import find_audio
from mdsim.errors import InputError
from mdsim.labels import TAG_DIMENSIONS

DEFAULT_GROUPS = Path(__file__).with_name("tag_groups.json")
DEFAULT_MIN_WEIGHT = 50.0


def load_groups(path=DEFAULT_GROUPS) -> dict:
    """``{lower-case tag: (dimension, label)}`` from a grouping file."""
    data = json.loads(Path(path).read_text())
    out = {}
    for dim in TAG_DIMENSIONS:
        for entry in data.get(dim, []):
            tag, _, label = entry.partition("=")
            out[tag.strip().lower()] = (dim, (label or tag).strip())
    if not out:
        raise InputError(f"{path}: no tags grouped under {', '.join(TAG_DIMENSIONS)}")
    return out


def read_json_folder(folder) -> dict:
    """``{track_id: [(tag, weight), ...]}`` from a folder of per-track JSON files."""
    out = {}
    for p in sorted(Path(folder).rglob("*.json")):
        try:
            data = json.loads(p.read_text())
        except ValueError as e:
            raise InputError(f"{p}: not valid JSON ({e})") from None
        if not isinstance(data, dict) or "track_id" not in data:
            raise InputError(f"{p}: no \"track_id\" key; expected the Last.fm dataset's per-track JSON "
                             "({\"track_id\": ..., \"tags\": [[tag, weight], ...]})")
        try:
            out[data["track_id"]] = [(str(t), float(w)) for t, w in data.get("tags", [])]
        except (TypeError, ValueError):
            raise InputError(f"{p}: \"tags\" must be a list of [tag, weight] pairs") from None
    return out


def read_sqlite(path) -> dict:
    """``{track_id: [(tag, weight), ...]}`` from ``lastfm_tags.db``."""
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        rows = con.execute("SELECT tids.tid, tags.tag, tid_tag.val FROM tid_tag "
                           "JOIN tids ON tids.ROWID = tid_tag.tid JOIN tags ON tags.ROWID = tid_tag.tag").fetchall()
    except sqlite3.Error as e:
        raise InputError(f"{path}: not a Last.fm tags database with tables tids, tags, tid_tag ({e})") from None
    out: dict = {}
    for tid, tag, val in rows:
        out.setdefault(tid, []).append((tag, float(val)))
    return out


def read_tags(source) -> dict:
    source = Path(source)
    if source.is_dir():
        return read_json_folder(source)
    if source.is_file():
        return read_sqlite(source)
    raise InputError(f"{source}: no such folder of JSON files or SQLite database")


def group_tags(tags, groups: dict, *, min_weight: float = DEFAULT_MIN_WEIGHT) -> dict:
    """``{dimension: [labels]}`` of one track's weighted tags."""
    out = {d: [] for d in TAG_DIMENSIONS}
    for tag, weight in tags:
        hit = groups.get(tag.strip().lower())
        if hit and weight >= min_weight and hit[1] not in out[hit[0]]:
            out[hit[0]].append(hit[1])
    return out


def audio_by_track_id(folder) -> dict:
    """``{track_id: path}`` of the audio files below ``folder``, the file's stem being the track id.

    Of two files with the same stem (``TRAAA.wav``, ``TRAAA.mp3``) the last by sorted path counts.
    """
    if not Path(folder).is_dir():
        raise InputError(f"{folder}: no such audio folder; give the folder of audio previews "
                         "named by track id (TRAAAAK128F9318786.mp3)")
    return {p.stem: p for p in find_audio(folder)}


def build_manifest(tags_source, audio_folder, out, *, groups=DEFAULT_GROUPS,
                   min_weight: float = DEFAULT_MIN_WEIGHT) -> dict:
    """Write the manifest; returns counts ``{tracks_with_tags, with_audio, written, unlabelled}``."""
    grouping = load_groups(groups)
    tags = read_tags(tags_source)
    audio = audio_by_track_id(audio_folder)
    out = Path(out)
    written = unlabelled = 0
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["track_id", "path", *TAG_DIMENSIONS])
        for tid in sorted(tags):
            if tid not in audio:
                continue
            labels = group_tags(tags[tid], grouping, min_weight=min_weight)
            if not any(labels.values()):
                unlabelled += 1
            path = audio[tid].resolve()
            w.writerow([tid, str(path), *(";".join(labels[d]) for d in TAG_DIMENSIONS)])
            written += 1
    return {"tracks_with_tags": len(tags), "with_audio": written, "written": written,
            "unlabelled": unlabelled}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m mdsim.recipes.msd_lastfm", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tags", required=True, help="lastfm_tags.db, or a folder of per-track JSON files")
    p.add_argument("--audio", required=True, help="folder of audio previews named by track id")
    p.add_argument("--out", required=True, help="manifest CSV to write")
    p.add_argument("--groups", default=DEFAULT_GROUPS, help="tag grouping JSON (default mdsim/recipes/tag_groups.json)")
    p.add_argument("--min-weight", type=float, default=DEFAULT_MIN_WEIGHT,
                   help="least Last.fm tag weight (0-100) that counts (default 50)")
    args = p.parse_args(argv)
    try:
        counts = build_manifest(args.tags, args.audio, args.out, groups=args.groups, min_weight=args.min_weight)
    except InputError as e:
        print(f"msd_lastfm: error: {e}", file=sys.stderr)
        return 2
    print(f"msd_lastfm: {counts['tracks_with_tags']} tracks with tags, {counts['written']} with audio written "
          f"to {args.out} ({counts['unlabelled']} of them with no tag above weight {args.min_weight:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
