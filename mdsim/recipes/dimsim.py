"""Dim-sim triplets -> the high-agreement split, a manifest of its tracks, a coverage report.

Reads a Dim-sim CSV (raw vote counts or the clean 0/1 form), keeps the triplets with a clear
winner and a vote agreement ``max(votes) / sum(votes)`` of at least ``--min-agreement``
(default 0.9, the high-agreement split), and writes to ``--out``:

- ``triplets_high_agreement.csv``: the kept rows as given, in the Dim-sim format (the
  published columns, in their order; extra columns are not copied);
- ``manifest.csv``: an ``mdsim prep`` manifest (columns ``track_id, path``; absolute paths,
  sorted by track id) of the tracks of the kept triplets whose audio preview is found below
  ``--audio`` (any of wav, flac, ogg, mp3, aiff, anywhere below it, the file's stem being the
  MSD track id, as in ``mdsim.recipes.msd_lastfm``); tempo and key are left to madmom;
- ``coverage.md`` and ``coverage.json``: how many triplets and tracks the file holds, how
  many are in the split, which tracks of the split have no audio, how many triplets have
  audio for all three tracks, and, with ``--store``, the same against a features store.

The same inputs give the same files (nothing in them depends on time or order of discovery):
rows keep the file's order, track ids are sorted.

    python -m mdsim.recipes.dimsim --triplets dim-sim_raw.csv --audio previews/ --out dimsim/
    mdsim prep dimsim/manifest.csv --out dimsim.h5
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from mdsim.errors import InputError, MdsimError
from mdsim.evaluation.triplets import (
    DEFAULT_MIN_AGREEMENT,
    TRIPLET_COLUMNS,
    SelectionReport,
    TripletTable,
    read_triplets,
    select_triplets,
    write_triplets,
)
from mdsim.recipes.msd_lastfm import audio_by_track_id

TRIPLETS_NAME = "triplets_high_agreement.csv"
MANIFEST_NAME = "manifest.csv"
REPORT_MD_NAME = "coverage.md"
REPORT_JSON_NAME = "coverage.json"

_FIX = (f"give the Dim-sim CSV (raw vote counts or clean 0/1), whose header names the columns "
        f"{TRIPLET_COLUMNS[0]},{TRIPLET_COLUMNS[1]},...,{TRIPLET_COLUMNS[-1]}")


def read_dimsim(path) -> TripletTable:
    """Read a Dim-sim CSV, raw or clean, with :func:`mdsim.evaluation.triplets.read_triplets`.

    Raises
    ------
    InputError
        When the file is missing, is not a UTF-8 CSV, lacks a Dim-sim column,
        has a bad cell, or lists no triplet; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file; {_FIX}")
    try:
        table = read_triplets(path)  # a binary or non-UTF-8 file is an InputError there too
    except InputError as e:
        raise InputError(f"{e}; {_FIX}") from None
    if len(table) == 0:
        raise InputError(f"{path}: the file lists no triplets; {_FIX}")
    return table


def select_rows(table: TripletTable, *, min_agreement: float = DEFAULT_MIN_AGREEMENT
                ) -> tuple[TripletTable, SelectionReport]:
    """The rows that :func:`~mdsim.evaluation.triplets.select_triplets` keeps, as given.

    Unlike ``select_triplets``, which orients each kept triplet as (anchor,
    positive, negative), this keeps the rows themselves (``song1``/``song2``
    and the votes unchanged, file order kept), so that they can be written
    back in the Dim-sim format. Returns the rows and the selection counts.
    """
    numbered = dataclasses.replace(table, triplet_id=np.arange(len(table)).astype(str))
    kept = select_triplets(numbered, min_agreement=min_agreement)
    index = kept.triplet_id.astype(np.int64)
    rows = TripletTable(**{c: getattr(table, c)[index] for c in TRIPLET_COLUMNS}, source=table.source)
    return rows, kept.selection


def _track_ids(table: TripletTable) -> list[str]:
    return sorted(set(table.anchor_id) | set(table.song1_id) | set(table.song2_id))


def _n_covered(table: TripletTable, present: set) -> int:
    """Triplets whose anchor, song1 and song2 are all in ``present``."""
    return sum(1 for ids in zip(table.anchor_id, table.song1_id, table.song2_id) if present.issuperset(ids))


def _store_track_ids(store) -> set:
    from mdsim.features.store import FeatureStore

    with FeatureStore(store) as s:
        return set(s.track_ids())


def build(triplets, audio_folder, out, *, store=None, min_agreement: float = DEFAULT_MIN_AGREEMENT) -> dict:
    """Write the split, the manifest and the coverage report to ``out``; returns the report.

    Parameters
    ----------
    triplets : str or Path
        The Dim-sim CSV.
    audio_folder : str or Path
        Folder of audio previews named by MSD track id (searched recursively).
    out : str or Path
        Output folder, created when missing; the four files in it are replaced.
    store : str or Path, optional
        A features store (``mdsim prep`` output) to check the split's tracks against.
    min_agreement : float
        Least vote agreement a triplet needs (default 0.9).

    Returns
    -------
    dict
        The coverage report, as written to ``coverage.json``.

    Raises
    ------
    InputError
        A missing or malformed CSV, a missing audio folder, an agreement out
        of 0..1, or no triplet left in the split.
    StoreError
        When ``store`` is given but is not a readable features store.
    """
    table = read_dimsim(triplets)
    audio_folder = Path(audio_folder)
    if not audio_folder.is_dir():
        raise InputError(f"{audio_folder}: no such folder; give the folder of audio previews, "
                         f"each file named by its MSD track id (e.g. TRAAAAK128F9318786.mp3)")
    rows, selection = select_rows(table, min_agreement=min_agreement)
    if len(rows) == 0:
        raise InputError(f"{triplets}: none of the {len(table)} triplets has a clear winner and agreement "
                         f">= {min_agreement:g}; lower --min-agreement")
    in_store = _store_track_ids(store) if store is not None else None
    audio = audio_by_track_id(audio_folder)

    all_ids, split_ids = _track_ids(table), _track_ids(rows)
    with_audio = [t for t in split_ids if t in audio]
    report = {
        "triplets_file": str(triplets),
        "audio_folder": str(audio_folder),
        "min_agreement": float(min_agreement),
        "triplets": {
            "total": len(table),
            "high_agreement": len(rows),
            "dropped_tie": selection.n_dropped_tie,
            "dropped_low_agreement": selection.n_dropped_low_agreement,
            "with_audio": _n_covered(rows, set(audio)),
            "total_with_audio": _n_covered(table, set(audio)),
        },
        "tracks": {
            "total": len(all_ids),
            "high_agreement": len(split_ids),
            "with_audio": len(with_audio),
            "total_with_audio": sum(1 for t in all_ids if t in audio),
            "missing_audio": [t for t in split_ids if t not in audio],
        },
    }
    if in_store is not None:
        report["store"] = str(store)
        report["triplets"]["in_store"] = _n_covered(rows, in_store)
        report["tracks"]["in_store"] = sum(1 for t in split_ids if t in in_store)
        report["tracks"]["missing_from_store"] = [t for t in split_ids if t not in in_store]

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_triplets(out / TRIPLETS_NAME, rows)
    with open(out / MANIFEST_NAME, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["track_id", "path"])
        for tid in with_audio:
            w.writerow([tid, str(audio[tid].resolve())])
    report["outputs"] = {"triplets": TRIPLETS_NAME, "manifest": MANIFEST_NAME,
                         "report_md": REPORT_MD_NAME, "report_json": REPORT_JSON_NAME}
    (out / REPORT_JSON_NAME).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / REPORT_MD_NAME).write_text(report_markdown(report), encoding="utf-8")
    return report


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f} %" if whole else "-"


def report_markdown(report: dict) -> str:
    """The coverage report as a Markdown page."""
    t, k = report["triplets"], report["tracks"]
    has_store = "store" in report
    lines = [
        "# Dim-sim coverage",
        "",
        f"- triplets file: `{report['triplets_file']}`",
        f"- audio folder: `{report['audio_folder']}`",
        *([f"- features store: `{report['store']}`"] if has_store else []),
        (f"- high-agreement split: a clear winner and agreement >= {report['min_agreement']:g} "
         f"({_n(t['dropped_tie'], 'tie')} and {t['dropped_low_agreement']} below the threshold dropped)"),
        "",
        "| | in the file | in the split | with audio (split) |" + (" in the store (split) |" if has_store else ""),
        "|---|---:|---:|---:|" + ("---:|" if has_store else ""),
        f"| triplets | {t['total']} | {t['high_agreement']} | "
        f"{t['with_audio']} ({_pct(t['with_audio'], t['high_agreement'])}) |"
        + (f" {t['in_store']} ({_pct(t['in_store'], t['high_agreement'])}) |" if has_store else ""),
        f"| tracks | {k['total']} | {k['high_agreement']} | "
        f"{k['with_audio']} ({_pct(k['with_audio'], k['high_agreement'])}) |"
        + (f" {k['in_store']} ({_pct(k['in_store'], k['high_agreement'])}) |" if has_store else ""),
        "",
        f"A triplet counts in the last column{'s' if has_store else ''} only when its anchor and both songs do.",
        (f"Over the whole file, {t['total_with_audio']} of {t['total']} triplets and "
         f"{k['total_with_audio']} of {k['total']} tracks have audio."),
        "",
    ]
    for title, ids in (("Tracks of the split without audio", k["missing_audio"]),
                       *([("Tracks of the split not in the store", k["missing_from_store"])] if has_store else [])):
        lines += [f"## {title} ({len(ids)})", ""]
        lines += ["```", *ids, "```", ""] if ids else ["None.", ""]
    o = report["outputs"]
    lines += ["## Files", "",
              f"- `{o['triplets']}`: the triplets of the split, Dim-sim format",
              f"- `{o['manifest']}`: `mdsim prep` manifest of the split's tracks with audio",
              f"- `{o['report_md']}`, `{o['report_json']}`: this report", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m mdsim.recipes.dimsim", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--triplets", required=True, help="the Dim-sim CSV (raw vote counts or clean 0/1)")
    p.add_argument("--audio", required=True, help="folder of audio previews named by MSD track id")
    p.add_argument("--store", help="a features store (.h5) to check the split's tracks against")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--min-agreement", type=float, default=DEFAULT_MIN_AGREEMENT,
                   help=f"least vote agreement max(votes)/sum(votes) to keep a triplet "
                        f"(default {DEFAULT_MIN_AGREEMENT:g})")
    args = p.parse_args(argv)
    try:
        report = build(args.triplets, args.audio, args.out, store=args.store, min_agreement=args.min_agreement)
    except MdsimError as e:
        print(f"dimsim: error: {e}", file=sys.stderr)
        return 2
    t, k = report["triplets"], report["tracks"]
    out = Path(args.out)
    print(f"dimsim: {t['total']} triplets read, {t['high_agreement']} with agreement >= {args.min_agreement:g}; "
          f"{k['with_audio']} of their {k['high_agreement']} tracks have audio, "
          f"{_n(t['with_audio'], 'triplet')} with audio for all three tracks")
    if "store" in report:
        print(f"dimsim: {k['in_store']} of the {k['high_agreement']} tracks are in {args.store}, "
              f"{_n(t['in_store'], 'triplet')} with all three tracks in it")
    print(f"dimsim: wrote {out / TRIPLETS_NAME}, {out / MANIFEST_NAME}, {out / REPORT_MD_NAME}, "
          f"{out / REPORT_JSON_NAME}")
    print(f"dimsim: next: mdsim prep {out / MANIFEST_NAME} --out dimsim.h5")
    if not k["with_audio"]:
        print(f"dimsim: warning: no track of the split has audio below {args.audio}; "
              f"files must be named by MSD track id (e.g. TRAAAAK128F9318786.mp3)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
