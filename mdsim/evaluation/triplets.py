"""Triplets in the Dim-sim CSV format: read, validate, select, generate, write.

A Dim-sim file has one row per triplet: an anchor clip and two candidate
clips (``song1``, ``song2``), each given by a track id and a start time, and
the number of listeners who found each candidate closer to the anchor. Raw
files hold vote counts, clean files 0/1.

Two types carry triplets:

- :class:`TripletTable`: the rows of a file as given, one array per column
  (what :func:`read_triplets` returns and :func:`write_triplets` writes).
- :class:`Triplets`: the selected triplets, oriented as (anchor, positive,
  negative), which is what the scores need (:func:`select_triplets`).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from mdsim.errors import InputError
from mdsim.labels import SOUND, TAG_DIMENSIONS, TEMPO_TOLERANCE_BPM, check_dimensions, similarity_matrix

#: The columns of a Dim-sim triplet file, in the published order.
TRIPLET_COLUMNS = (
    "triplet_id",
    "anchor_id", "anchor_start_seconds", "anchor_start_samples",
    "song1_id", "song1_start_seconds", "song1_start_samples",
    "song2_id", "song2_start_seconds", "song2_start_samples",
    "sampling_rate", "clip_lengths_seconds", "clip_lengths_samples",
    "song1_vote", "song2_vote",
)
_TEXT_COLUMNS = ("triplet_id", "anchor_id", "song1_id", "song2_id")
_INT_COLUMNS = ("anchor_start_samples", "song1_start_samples", "song2_start_samples",
                "sampling_rate", "clip_lengths_samples")

#: The high-agreement split of Dim-sim keeps triplets with agreement >= 0.9.
DEFAULT_MIN_AGREEMENT = 0.9
#: Dim-sim clips: 3 s at 22 050 Hz.
SAMPLING_RATE = 22050
CLIP_SECONDS = 3.0


@dataclass(frozen=True)
class TripletTable:
    """The rows of a Dim-sim format file, as given: one array per column.

    Field names are the column names. Ids are ``str`` arrays, seconds and
    votes ``float64``, sample counts and the sampling rate ``int64``; all
    arrays have shape ``(n_rows,)``.
    """

    triplet_id: np.ndarray
    anchor_id: np.ndarray
    anchor_start_seconds: np.ndarray
    anchor_start_samples: np.ndarray
    song1_id: np.ndarray
    song1_start_seconds: np.ndarray
    song1_start_samples: np.ndarray
    song2_id: np.ndarray
    song2_start_seconds: np.ndarray
    song2_start_samples: np.ndarray
    sampling_rate: np.ndarray
    clip_lengths_seconds: np.ndarray
    clip_lengths_samples: np.ndarray
    song1_vote: np.ndarray
    song2_vote: np.ndarray
    #: Where the rows came from (a file name), for reports; not a column.
    source: str | None = None

    def __post_init__(self):
        n = None
        for name in TRIPLET_COLUMNS:
            dtype = str if name in _TEXT_COLUMNS else np.int64 if name in _INT_COLUMNS else np.float64
            column = np.asarray(getattr(self, name), dtype=dtype)
            if column.ndim != 1 or (n is not None and len(column) != n):
                raise InputError(f"triplet column {name!r} must be 1-D with one value per row")
            n = len(column)
            object.__setattr__(self, name, column)

    def __len__(self) -> int:
        return len(self.triplet_id)

    @property
    def agreement(self) -> np.ndarray:
        """``max(votes) / sum(votes)`` per row, float64; NaN where no vote was cast."""
        total = self.song1_vote + self.song2_vote
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, np.maximum(self.song1_vote, self.song2_vote) / total, np.nan)


@dataclass(frozen=True)
class SelectionReport:
    """How many triplets a file held and why some were not kept.

    Every row read is either kept or dropped for exactly one reason,
    checked in this order: a tie (equal votes, including 0-0), then an
    agreement below ``min_agreement``.
    """

    source: str | None
    min_agreement: float
    n_read: int
    n_kept: int
    n_dropped_tie: int
    n_dropped_low_agreement: int

    @property
    def n_dropped(self) -> int:
        return self.n_dropped_tie + self.n_dropped_low_agreement

    def to_dict(self) -> dict:
        return {"source": self.source, "min_agreement": self.min_agreement, "n_read": self.n_read,
                "n_kept": self.n_kept, "n_dropped_tie": self.n_dropped_tie,
                "n_dropped_low_agreement": self.n_dropped_low_agreement}


@dataclass(frozen=True)
class Triplets:
    """Triplets oriented as (anchor, positive, negative), ready to score.

    Ids are ``str`` arrays and start times ``float64`` seconds, all shaped
    ``(n,)``; start times matter in clip mode only. ``selection`` says how
    they were chosen from a file (``None`` when built by hand).
    """

    anchor: np.ndarray
    positive: np.ndarray
    negative: np.ndarray
    triplet_id: np.ndarray | None = None
    anchor_start: np.ndarray | None = None
    positive_start: np.ndarray | None = None
    negative_start: np.ndarray | None = None
    agreement: np.ndarray | None = None
    selection: SelectionReport | None = None

    def __post_init__(self):
        n = len(self.anchor)
        defaults = {"triplet_id": np.arange(n).astype(str), "anchor_start": np.zeros(n),
                    "positive_start": np.zeros(n), "negative_start": np.zeros(n),
                    "agreement": np.ones(n)}
        for f in fields(self):
            if f.name == "selection":
                continue
            value = getattr(self, f.name)
            if value is None:
                value = defaults[f.name]
            dtype = str if f.name in ("anchor", "positive", "negative", "triplet_id") else np.float64
            value = np.asarray(value, dtype=dtype)
            if value.shape != (n,):
                raise InputError(f"triplets field {f.name!r} has shape {value.shape}, expected ({n},)")
            object.__setattr__(self, f.name, value)

    def __len__(self) -> int:
        return len(self.anchor)

    def take(self, index) -> "Triplets":
        """The triplets at ``index`` (a boolean mask or integer indices)."""
        return Triplets(**{f.name: getattr(self, f.name)[index] for f in fields(self) if f.name != "selection"},
                        selection=self.selection)

    def track_ids(self) -> set[str]:
        """Every track id any triplet refers to."""
        return set(self.anchor) | set(self.positive) | set(self.negative)


# --------------------------------------------------------------------------------------
# Reading and writing


def read_triplets(path) -> TripletTable:
    """Read a Dim-sim format CSV (raw or clean) without selecting anything.

    Extra columns are ignored. Rows are kept as given: a triplet id listed
    twice is two rows.

    Raises
    ------
    InputError
        When the file is missing, a column is missing (all missing columns
        are named), or a cell is not a number where one is expected.
    """
    path = Path(path)
    try:
        handle = open(path, newline="", encoding="utf-8-sig")
    except OSError as e:
        raise InputError(f"cannot read triplet file {path}: {e.strerror}") from None
    try:
        with handle:
            return _read_rows(csv.reader(handle), path)
    except (UnicodeDecodeError, csv.Error) as e:
        raise InputError(f"{path} is not a text CSV file ({e.__class__.__name__}: {e}); "
                         "give a Dim-sim triplet CSV (UTF-8)") from None


def _read_rows(reader, path) -> TripletTable:
    header = [h.strip() for h in next(reader, [])]
    missing = [c for c in TRIPLET_COLUMNS if c not in header]
    if missing:
        raise InputError(f"{path} is not a Dim-sim triplet file: missing column(s) {', '.join(missing)} "
                         f"(columns: {', '.join(header) or 'none'})")
    where = {c: header.index(c) for c in TRIPLET_COLUMNS}
    columns = {c: [] for c in TRIPLET_COLUMNS}
    for line, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < len(header):
            raise InputError(f"{path}, line {line}: {len(row)} fields, expected {len(header)}")
        for c in TRIPLET_COLUMNS:
            columns[c].append(_parse_cell(row[where[c]].strip(), c, path, line))
    return TripletTable(**columns, source=str(path))


def _parse_cell(cell: str, column: str, path, line: int):
    if column in _TEXT_COLUMNS:
        if not cell:
            raise InputError(f"{path}, line {line}: empty {column}")
        return cell
    try:
        value = float(cell)
    except ValueError:
        raise InputError(f"{path}, line {line}: {column} is {cell!r}, expected a number") from None
    if not math.isfinite(value) or value < 0:
        raise InputError(f"{path}, line {line}: {column} is {cell!r}, expected a number >= 0")
    if column in _INT_COLUMNS:
        if value != int(value):
            raise InputError(f"{path}, line {line}: {column} is {cell!r}, expected a whole number")
        return int(value)
    return value


def write_triplets(path, table: TripletTable) -> Path:
    """Write a :class:`TripletTable` as a Dim-sim format CSV that :func:`read_triplets` reads back."""
    path = Path(path)
    columns = [getattr(table, c) for c in TRIPLET_COLUMNS]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(TRIPLET_COLUMNS)
        for i in range(len(table)):
            writer.writerow([_format_cell(col[i]) for col in columns])
    return path


def _format_cell(value) -> str:
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return str(int(value)) if value.is_integer() and abs(value) < 2 ** 53 else repr(value)
    return str(value)


# --------------------------------------------------------------------------------------
# Selection


def select_triplets(table: TripletTable, *, min_agreement: float = DEFAULT_MIN_AGREEMENT) -> Triplets:
    """Keep the rows with a clear winner and agreement ``>= min_agreement``, oriented.

    Agreement is ``max(votes) / sum(votes)``; the positive is the song with
    more votes. Ties (equal votes, 0-0 included) are dropped whatever
    ``min_agreement`` is. The counts are in the result's ``selection``.

    Four raw rows, anchor ``a`` with candidates ``b`` and ``c``:

    >>> n = 4
    >>> table = TripletTable(
    ...     triplet_id=["t1", "t2", "t3", "t4"], anchor_id=["a"] * n,
    ...     anchor_start_seconds=[0] * n, anchor_start_samples=[0] * n,
    ...     song1_id=["b", "b", "c", "c"], song1_start_seconds=[0] * n, song1_start_samples=[0] * n,
    ...     song2_id=["c", "c", "b", "b"], song2_start_seconds=[0] * n, song2_start_samples=[0] * n,
    ...     sampling_rate=[22050] * n, clip_lengths_seconds=[3.0] * n, clip_lengths_samples=[66150] * n,
    ...     song1_vote=[9, 3, 5, 0], song2_vote=[1, 7, 5, 4])
    >>> table.agreement.tolist()                      # max(votes) / sum(votes)
    [0.9, 0.7, 0.5, 1.0]
    >>> triplets = select_triplets(table, min_agreement=0.9)
    >>> triplets.triplet_id.tolist(), triplets.positive.tolist(), triplets.negative.tolist()
    (['t1', 't4'], ['b', 'b'], ['c', 'c'])
    >>> s = triplets.selection
    >>> s.n_read, s.n_kept, s.n_dropped_tie, s.n_dropped_low_agreement
    (4, 2, 1, 1)
    """
    if not 0.0 <= min_agreement <= 1.0:
        raise InputError(f"min_agreement is {min_agreement}, expected a fraction in 0..1 (Dim-sim uses 0.9)")
    tie = table.song1_vote == table.song2_vote
    agreement = table.agreement
    low = ~tie & (agreement < min_agreement)
    keep = ~tie & ~low
    song1_wins = (table.song1_vote > table.song2_vote)[keep]
    t = {c: getattr(table, c)[keep] for c in ("song1_id", "song2_id", "song1_start_seconds", "song2_start_seconds")}
    report = SelectionReport(source=table.source, min_agreement=float(min_agreement), n_read=len(table),
                             n_kept=int(keep.sum()), n_dropped_tie=int(tie.sum()),
                             n_dropped_low_agreement=int(low.sum()))
    return Triplets(
        anchor=table.anchor_id[keep],
        positive=np.where(song1_wins, t["song1_id"], t["song2_id"]),
        negative=np.where(song1_wins, t["song2_id"], t["song1_id"]),
        triplet_id=table.triplet_id[keep],
        anchor_start=table.anchor_start_seconds[keep],
        positive_start=np.where(song1_wins, t["song1_start_seconds"], t["song2_start_seconds"]),
        negative_start=np.where(song1_wins, t["song2_start_seconds"], t["song1_start_seconds"]),
        agreement=agreement[keep],
        selection=report,
    )


def load_triplets(path, *, min_agreement: float = DEFAULT_MIN_AGREEMENT) -> Triplets:
    """:func:`read_triplets` then :func:`select_triplets`."""
    return select_triplets(read_triplets(path), min_agreement=min_agreement)


# --------------------------------------------------------------------------------------
# Generation from labels


def generate_triplets(labels_by_track: dict, dimension: str, n: int, *, seed: int = 0,
                      track_ids=None, durations: dict | None = None,
                      clip_seconds: float = CLIP_SECONDS, sampling_rate: int = SAMPLING_RATE,
                      tolerance_bpm: float = TEMPO_TOLERANCE_BPM, at_most: bool = False) -> TripletTable:
    """Draw ``n`` distinct triplets of one dimension from track labels, as a clean Dim-sim table.

    The positive is similar to the anchor and the negative is labelled but
    not similar, by the rules of :mod:`mdsim.labels` (``similarity_matrix``,
    evaluated as ``similar(anchor, other)``); unlabelled tracks take no part.
    Triplets are drawn uniformly from all valid (anchor, positive, negative)
    triplets, without repetition, so no track appears twice in a triplet.
    Which of ``song1``/``song2`` is the positive is a fair coin; the
    positive gets vote 1, the other 0.

    Parameters
    ----------
    labels_by_track : dict
        ``{track_id: labels}``, labels as in :mod:`mdsim.labels`.
    dimension : str
    n : int
        Number of triplets; at most the number of distinct valid triplets.
    at_most : bool
        Where fewer than ``n`` distinct triplets exist, draw them all instead of refusing (a
        small set, such as a few real recordings).
    seed : int
        Same labels, arguments and seed give the same table.
    track_ids : iterable of str, optional
        Draw only from these tracks (for example a held-out split).
    durations : dict, optional
        ``{track_id: seconds}``. Given, every clip starts at a random
        offset on the sample grid at which a whole clip fits (0 for tracks
        shorter than a clip); omitted, every clip starts at 0.
    clip_seconds, sampling_rate
        Written to the clip-length and sampling-rate columns.

    Notes
    -----
    Memory is O(m^2) in the number m of labelled tracks considered (the
    similarity matrix), so pass ``track_ids`` for large collections.
    """
    (dimension,) = check_dimensions([dimension])
    if dimension == SOUND:
        raise InputError("sound has no track labels to draw triplets from (a track is similar to itself "
                         "only); experiments/default_model.py measures it on parts of held-out recordings")
    if int(n) != n or n < 1:
        raise InputError(f"number of triplets is {n}, expected a whole number >= 1")
    n = int(n)
    if track_ids is None:
        ids = sorted(labels_by_track)
    else:
        ids = sorted(set(track_ids))
        unknown = [t for t in ids if t not in labels_by_track]
        if unknown:
            raise InputError(f"{len(unknown)} track id(s) have no labels, e.g. {', '.join(unknown[:5])}")
    values = [labels_by_track[t].get(dimension) for t in ids]
    if dimension in TAG_DIMENSIONS:
        values = [v or [] for v in values]
    sim, labelled = similarity_matrix(dimension, values, tolerance_bpm=tolerance_bpm)
    keep = np.flatnonzero(labelled)
    ids = np.asarray(ids, dtype=str)[keep]
    sim = sim[np.ix_(keep, keep)]
    positive = sim & ~np.eye(len(ids), dtype=bool)
    negative = ~sim

    rng = np.random.default_rng(seed)
    a, p, q = _draw_distinct(positive, negative, n, rng, dimension=dimension, at_most=at_most)
    return _as_table(ids[a], ids[p], ids[q], rng, dimension=dimension, durations=durations,
                     clip_seconds=clip_seconds, sampling_rate=sampling_rate)


def _draw_distinct(positive: np.ndarray, negative: np.ndarray, n: int, rng, *, dimension: str,
                   at_most: bool = False):
    """``n`` distinct (anchor, positive, negative) index triplets, uniform over all valid ones."""
    n_pos = positive.sum(axis=1).astype(np.int64)
    n_neg = negative.sum(axis=1).astype(np.int64)
    weight = n_pos * n_neg
    total = int(weight.sum())
    if total == 0:
        raise InputError(f"no {dimension} triplet can be formed: among {len(weight)} labelled track(s) "
                         f"none has both a similar and a dissimilar track")
    if n > total and at_most:
        n = total
    if n > total:
        raise InputError(f"asked for {n} {dimension} triplets but only {total} distinct ones exist "
                         f"among {len(weight)} labelled track(s)")
    if 2 * n > total:
        # Most of all triplets are wanted: enumerate them (at most 2n) and pick.
        rows = [np.stack(np.meshgrid([i], np.flatnonzero(positive[i]), np.flatnonzero(negative[i]),
                                     indexing="ij"), -1).reshape(-1, 3)
                for i in np.flatnonzero(weight)]
        chosen = np.concatenate(rows)[rng.choice(total, size=n, replace=False)]
        return chosen[:, 0], chosen[:, 1], chosen[:, 2]
    # Otherwise rejection: each draw is new with probability > 1/2.
    pos_lists = [np.flatnonzero(r) for r in positive]
    neg_lists = [np.flatnonzero(r) for r in negative]
    m = len(weight)
    out, seen = [], set()
    while len(out) < n:
        anchors = rng.choice(m, size=2 * (n - len(out)), p=weight / total)
        pick_pos, pick_neg = rng.integers(n_pos[anchors]), rng.integers(n_neg[anchors])
        for i, j, k in zip(anchors, pick_pos, pick_neg):
            triplet = (int(i), int(pos_lists[i][j]), int(neg_lists[i][k]))
            if triplet not in seen:
                seen.add(triplet)
                out.append(triplet)
                if len(out) == n:
                    break
    chosen = np.array(out, dtype=np.int64)
    return chosen[:, 0], chosen[:, 1], chosen[:, 2]


def _as_table(anchor, positive, negative, rng, *, dimension, durations, clip_seconds, sampling_rate):
    n = len(anchor)
    song1_is_positive = rng.random(n) < 0.5
    song1 = np.where(song1_is_positive, positive, negative)
    song2 = np.where(song1_is_positive, negative, positive)
    clip_samples = int(round(clip_seconds * sampling_rate))
    starts = {}
    for role, ids in (("anchor", anchor), ("song1", song1), ("song2", song2)):
        if durations is None:
            samples = np.zeros(n, dtype=np.int64)
        else:
            lacking = sorted({t for t in ids if t not in durations})
            if lacking:
                raise InputError(f"no duration for {len(lacking)} track(s), e.g. {', '.join(lacking[:5])}")
            last = np.array([int(math.floor(durations[t] * sampling_rate)) - clip_samples for t in ids])
            samples = rng.integers(np.maximum(last, 0) + 1)
        starts[role] = samples
    width = len(str(n - 1))
    return TripletTable(
        triplet_id=[f"{dimension}-{i:0{width}d}" for i in range(n)],
        anchor_id=anchor, anchor_start_seconds=starts["anchor"] / sampling_rate,
        anchor_start_samples=starts["anchor"],
        song1_id=song1, song1_start_seconds=starts["song1"] / sampling_rate, song1_start_samples=starts["song1"],
        song2_id=song2, song2_start_seconds=starts["song2"] / sampling_rate, song2_start_samples=starts["song2"],
        sampling_rate=np.full(n, sampling_rate), clip_lengths_seconds=np.full(n, clip_samples / sampling_rate),
        clip_lengths_samples=np.full(n, clip_samples),
        song1_vote=song1_is_positive.astype(np.float64), song2_vote=(~song1_is_positive).astype(np.float64),
        source=None,
    )
