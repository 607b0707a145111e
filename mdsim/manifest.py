"""What ``mdsim prep`` reads: a folder of audio, or a manifest CSV with labels.

Manifest columns: ``track_id, path`` (required; ``path`` relative to the
manifest's folder or absolute), optional ``genre, mood, instrument, era``
(multi-label, ``;``-separated), ``tempo`` (BPM) and ``key`` (e.g. ``F# minor``)
which override madmom, and ``group`` (e.g. artist) for leak-free splits.
Any other column is kept as metadata. The whole manifest is validated
before any work starts.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from mdsim.audio import find_audio
from mdsim.errors import InputError
from mdsim.labels import TAG_DIMENSIONS, parse_key, parse_tags, parse_tempo

REQUIRED_COLUMNS = ("track_id", "path")
KNOWN_COLUMNS = REQUIRED_COLUMNS + TAG_DIMENSIONS + ("tempo", "key", "group")


@dataclass
class TrackEntry:
    """One input track: where its audio is and what is known about it.

    ``labels`` follows the contract of :mod:`mdsim.labels` (tag lists, tempo
    in BPM or ``None``, key index or ``None``); ``None`` tempo or key means
    madmom estimates it.
    """

    track_id: str
    path: Path
    labels: dict = field(default_factory=dict)
    group: str = ""
    metadata: dict = field(default_factory=dict)


def read_manifest(path) -> list[TrackEntry]:
    """Read and validate a manifest CSV.

    Raises
    ------
    InputError
        Missing required columns, an empty or duplicate track id, a
        non-numeric tempo or an unknown key name, naming the file and row.
    """
    path = Path(path)
    try:
        f = open(path, newline="", encoding="utf-8-sig")
    except OSError as e:
        raise InputError(f"{path}: cannot open manifest ({e.strerror})") from None
    with f:
        reader = csv.DictReader(f)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise InputError(f"{path} has no column {', '.join(repr(c) for c in missing)} "
                             f"(columns: {', '.join(columns) or 'none'})")
        base = path.parent
        entries: list[TrackEntry] = []
        seen: dict[str, int] = {}
        for row_number, raw in enumerate(reader, start=2):  # row 1 is the header
            row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
            where = f"{path}, row {row_number}"
            track_id = row["track_id"]
            if not track_id:
                raise InputError(f"{where}: empty track_id")
            if track_id in seen:
                raise InputError(f"{where}: duplicate track_id {track_id!r} (first in row {seen[track_id]})")
            seen[track_id] = row_number
            if not row["path"]:
                raise InputError(f"{where}: empty path for track {track_id!r}")
            labels: dict = {d: parse_tags(row.get(d)) for d in TAG_DIMENSIONS}
            try:
                labels["tempo"] = parse_tempo(row.get("tempo"))
                labels["key"] = parse_key(row.get("key"))
            except InputError as e:
                raise InputError(f"{where}: {e}") from None
            audio = Path(row["path"])
            entries.append(TrackEntry(
                track_id=track_id,
                path=audio if audio.is_absolute() else base / audio,
                labels=labels,
                group=row.get("group", ""),
                metadata={k: v for k, v in row.items() if k not in KNOWN_COLUMNS and k},
            ))
    if not entries:
        raise InputError(f"{path}: the manifest lists no tracks")
    return entries


def entries_from_folder(folder) -> list[TrackEntry]:
    """One unlabelled entry per audio file below ``folder``.

    The track id is the file's path relative to ``folder`` without its
    extension (``jazz/take1.wav`` -> ``jazz/take1``).
    """
    folder = Path(folder)
    files = find_audio(folder)
    if not files:
        raise InputError(f"{folder}: no audio files found (looked for wav, flac, ogg, mp3, aiff)")
    entries, seen = [], {}
    for p in files:
        track_id = p.relative_to(folder).with_suffix("").as_posix()
        if track_id in seen:  # a.wav and a.flac side by side
            track_id = p.relative_to(folder).as_posix()
        seen[track_id] = p
        entries.append(TrackEntry(track_id=track_id, path=p,
                                  labels={d: [] for d in TAG_DIMENSIONS} | {"tempo": None, "key": None}))
    return entries


def read_input(path) -> list[TrackEntry]:
    """A folder, or a manifest CSV: the ``INPUT`` of ``mdsim prep``."""
    path = Path(path)
    if path.is_dir():
        return entries_from_folder(path)
    if path.is_file():
        if path.suffix.lower() not in (".csv", ".tsv", ".txt"):
            raise InputError(f"{path}: give a folder of audio or a manifest .csv")
        return read_manifest(path)
    raise InputError(f"{path}: no such file or folder")
