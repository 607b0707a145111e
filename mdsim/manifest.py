"""What ``mdsim prep`` reads: a folder of audio, or a manifest CSV with labels.

Manifest columns: ``track_id, path`` (required; ``path`` relative to the
manifest's folder or absolute), optional ``genre, mood, instrument, era``
(multi-label, ``;``-separated), ``tempo`` (BPM, 20..400) and ``key`` (e.g.
``F# minor``) which override the estimates (an empty cell: estimate it),
``pitch`` (a note's MIDI number or name such as ``C#4``, for sound libraries), and
``group`` (e.g. artist) for leak-free splits. The file is UTF-8 text.
Any other column is kept as metadata. The whole manifest is validated
before any work starts.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from mdsim.audio import find_audio
from mdsim.errors import InputError
from mdsim.labels import TAG_DIMENSIONS, parse_key, parse_pitch, parse_tags, parse_tempo

REQUIRED_COLUMNS = ("track_id", "path")
KNOWN_COLUMNS = REQUIRED_COLUMNS + TAG_DIMENSIONS + ("tempo", "key", "pitch", "group")


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


def control_character(text: str) -> str | None:
    """The first character of ``text`` that breaks a line or is invisible control
    (Unicode categories Cc, Zl, Zp: newline, tab, NUL, escape, U+2028, ...), described
    as ``"'\\n' (U+000A)"``; ``None`` when there is none. Track ids are one line of text:
    they are printed in tables and logs and written one per line in the store's index."""
    for c in text:
        if unicodedata.category(c) in ("Cc", "Zl", "Zp"):
            return f"{c!r} (U+{ord(c):04X})"
    return None


def _decode_text(path: Path) -> str:
    """The manifest's text; a file that is not UTF-8 is an error naming the line and the fix."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(f"{path}: cannot open manifest ({e.strerror})") from None
    try:
        return data.decode("utf-8-sig")  # a spreadsheet's "CSV UTF-8" starts with a BOM
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise InputError(f"{path} is not UTF-8 text (byte 0x{data[e.start]:02x} on line {line}; "
                         "Latin-1 or Windows-1252 perhaps): save it as UTF-8, e.g. 'CSV UTF-8' in a "
                         f"spreadsheet or `iconv -f latin1 -t utf-8 {path.name} > utf8.csv`") from None


def read_manifest(path) -> list[TrackEntry]:
    """Read and validate a manifest CSV (UTF-8).

    Row numbers in messages are line numbers of the file (the header is row 1).

    Raises
    ------
    InputError
        A file that is not UTF-8; missing or duplicate columns; a row with
        more or fewer fields than the header; an empty or duplicate track id, or one
        holding a control character (newline, tab, ...: :func:`control_character`);
        a tempo that is not a finite BPM in 20..400 (an empty cell means
        "estimate it") or an unknown key name: naming the file, row and column.
    """
    path = Path(path)
    reader = csv.reader(io.StringIO(_decode_text(path), newline=""))
    try:
        columns = [c.strip() for c in next(reader, [])]
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise InputError(f"{path} has no column {', '.join(repr(c) for c in missing)} "
                             f"(columns: {', '.join(columns) or 'none'})")
        twice = sorted({c for c in columns if columns.count(c) > 1})
        if twice:
            raise InputError(f"{path}: column {', '.join(repr(c) for c in twice)} appears more than once "
                             f"in the header (columns: {', '.join(columns)}); keep one of each")
        base = path.parent
        entries: list[TrackEntry] = []
        seen: dict[str, int] = {}
        for fields in reader:
            row_number = reader.line_num  # the header is row 1
            where = f"{path}, row {row_number}"
            if not any(f.strip() for f in fields):
                continue  # a blank line
            if len(fields) != len(columns):
                raise InputError(f"{where}: {len(fields)} fields, but the header has {len(columns)} "
                                 f"({', '.join(columns)}); quote a value that holds a comma, "
                                 "and give every column (empty is fine)")
            row = {c: v.strip() for c, v in zip(columns, fields)}
            track_id = row["track_id"]
            if not track_id:
                raise InputError(f"{where}: empty track_id")
            bad = control_character(track_id)
            if bad:
                raise InputError(f"{where}: track_id {track_id!r} holds the control character {bad}; "
                                 "a track id is one line of printable text: remove it")
            if track_id in seen:
                raise InputError(f"{where}: duplicate track_id {track_id!r} (first in row {seen[track_id]})")
            seen[track_id] = row_number
            if not row["path"]:
                raise InputError(f"{where}: empty path for track {track_id!r}")
            labels: dict = {d: parse_tags(row.get(d)) for d in TAG_DIMENSIONS}
            for column, parse in (("tempo", parse_tempo), ("key", parse_key), ("pitch", parse_pitch)):
                try:
                    labels[column] = parse(row.get(column))
                except InputError as e:
                    raise InputError(f"{where}, column {column!r}: {e}") from None
            if labels["pitch"] is None:
                del labels["pitch"]  # only sound libraries have one; tracks keep their label contract
            audio = Path(row["path"])
            entries.append(TrackEntry(
                track_id=track_id,
                path=audio if audio.is_absolute() else base / audio,
                labels=labels,
                group=row.get("group", ""),
                metadata={k: v for k, v in row.items() if k not in KNOWN_COLUMNS and k},
            ))
    except csv.Error as e:
        raise InputError(f"{path}, row {reader.line_num}: not a valid CSV row ({e})") from None
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
        bad = control_character(track_id)
        if bad:  # a file name cannot be fixed by the user's manifest: skip it, the others go on
            import warnings

            warnings.warn(f"skipping {p.relative_to(folder).as_posix()!r}: its name holds the control "
                          f"character {bad} (a track id is one line of printable text); rename it", stacklevel=2)
            continue
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
