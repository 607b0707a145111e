"""Tests of mdsim.evaluation: triplet files, generation, scores, embeddings files, reports."""

import csv
import itertools
import json

import numpy as np
import pytest

from mdsim.errors import InputError, StoreError
from mdsim.evaluation import (
    TRIPLET_COLUMNS,
    ClipEmbeddings,
    EmbeddingSet,
    TripletTable,
    Triplets,
    bootstrap_ci,
    combination_matrix,
    combinations,
    compare_table,
    evaluate,
    generate_triplets,
    load_triplets,
    markdown_table,
    radar_chart,
    read_embeddings,
    read_results,
    read_triplets,
    select_triplets,
    track_embedding,
    write_embeddings,
    write_report,
    write_triplets,
)
from mdsim.labels import DIMENSIONS, similar

ATOL = 1e-12  # scores are fractions of at most a few hundred triplets, computed in float64


# --------------------------------------------------------------------------------------
# Helpers


def write_csv(path, rows, columns=TRIPLET_COLUMNS):
    """A Dim-sim format file with the given (anchor, song1, song2, vote1, vote2) rows."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for i, (a, s1, s2, v1, v2) in enumerate(rows):
            full = {"triplet_id": i, "anchor_id": a, "anchor_start_seconds": 1.5, "anchor_start_samples": 33075,
                    "song1_id": s1, "song1_start_seconds": 2.0, "song1_start_samples": 44100,
                    "song2_id": s2, "song2_start_seconds": 4.0, "song2_start_samples": 88200,
                    "sampling_rate": 22050, "clip_lengths_seconds": 3.0, "clip_lengths_samples": 66150,
                    "song1_vote": v1, "song2_vote": v2}
            w.writerow([full[c] for c in columns])
    return path


def known_embeddings(margins, *, width=2, seed=0):
    """Embeddings whose per-subspace margins d(a,n)**2 - d(a,p)**2 are exactly ``margins``.

    ``margins``: int array (n_triplets, n_dims) with values in -1..1. Every
    coordinate is a small integer, so all squared distances are exact.
    Track ids: a<i>, p<i>, n<i>.
    """
    n, k = margins.shape
    rng = np.random.default_rng(seed)
    anchor = rng.integers(-3, 4, size=(n, k * width)).astype(np.float32)
    offset_pos = np.zeros((n, k, width), np.float32)
    offset_neg = np.zeros((n, k, width), np.float32)
    offset_pos[..., 0] = 1  # d(a, p)**2 = 1 in every subspace
    offset_neg[..., 0] = (margins + 1) > 0  # 1 + margin = 0, 1 or 2 ones
    offset_neg[..., 1] = (margins + 1) > 1
    ids = [f"{r}{i}" for r in "apn" for i in range(n)]
    x = np.concatenate([anchor, anchor + offset_pos.reshape(n, -1), anchor + offset_neg.reshape(n, -1)])
    triplets = Triplets(anchor=ids[:n], positive=ids[n:2 * n], negative=ids[2 * n:])
    return x, ids, triplets


def brute_force_scores(x_by_id, triplets, dims, slices):
    """Oracle: for each combination, mask the other subspaces and compare Euclidean norms."""
    out = {}
    for size in range(1, len(dims) + 1):
        for combo in itertools.combinations(range(len(dims)), size):
            mask = np.zeros(len(next(iter(x_by_id.values()))), bool)
            for c in combo:
                mask[slices[c][0]:slices[c][1]] = True
            hits = [np.linalg.norm((x_by_id[a] - x_by_id[p])[mask]) < np.linalg.norm((x_by_id[a] - x_by_id[q])[mask])
                    for a, p, q in zip(triplets.anchor, triplets.positive, triplets.negative)]
            out[tuple(dims[c] for c in combo)] = np.mean(hits)
    return out


@pytest.fixture
def genre_era_case():
    """10 triplets, six 2-d subspaces; only genre and era separate them.

    genre: +1 on triplets 0-7, -1 on 8-9  -> alone 0.8
    era:   +1 on triplets 0-5, -1 on 6-9  -> alone 0.6
    together: +2 on 0-5, 0 (a tie: incorrect) on 6-7, -2 on 8-9 -> 0.6
    other subspaces: margin 0 everywhere (ties) -> 0 alone, neutral in sums.
    """
    margins = np.zeros((10, 6), int)
    margins[:, 0] = [1] * 8 + [-1] * 2
    margins[:, 3] = [1] * 6 + [-1] * 4
    x, ids, triplets = known_embeddings(margins)
    return EmbeddingSet(ids, x, dimensions=DIMENSIONS, name="hand-built"), triplets


def expected_genre_era(combo):
    if "era" in combo:
        return 0.6
    return 0.8 if "genre" in combo else 0.0


# --------------------------------------------------------------------------------------
# Triplet files


def test_header_validation_names_missing_columns(tmp_path):
    columns = [c for c in TRIPLET_COLUMNS if c not in ("song2_vote", "sampling_rate")]
    path = write_csv(tmp_path / "bad.csv", [("a", "b", "c", 1, 0)], columns=columns)
    with pytest.raises(InputError, match=r"bad\.csv.*missing column\(s\) sampling_rate, song2_vote"):
        read_triplets(path)


def test_bad_cell_and_missing_file_are_input_errors(tmp_path):
    path = write_csv(tmp_path / "t.csv", [("a", "b", "c", "many", 0)])
    with pytest.raises(InputError, match=r"t\.csv, line 2: song1_vote is 'many'"):
        read_triplets(path)
    with pytest.raises(InputError, match="nowhere.csv"):
        read_triplets(tmp_path / "nowhere.csv")
    binary = tmp_path / "triplets.xlsx"
    binary.write_bytes(b"PK\x03\x04\xff\xfe\x00\x9c" * 64)
    with pytest.raises(InputError, match=r"triplets\.xlsx is not a text CSV file.*Dim-sim triplet CSV"):
        read_triplets(binary)


def test_agreement_filtering_on_raw_votes(tmp_path):
    rows = [("a0", "x0", "y0", 9, 1),    # agreement 0.9: kept, song1 positive
            ("a1", "x1", "y1", 0, 10),   # 1.0: kept, song2 positive
            ("a2", "x2", "y2", 1, 9),    # 0.9: kept, song2 positive
            ("a3", "x3", "y3", 5, 5),    # tie
            ("a4", "x4", "y4", 0, 0),    # no votes: a tie too
            ("a5", "x5", "y5", 7, 3),    # 0.7: low
            ("a6", "x6", "y6", 8, 1)]    # 0.889: low
    path = write_csv(tmp_path / "raw.csv", rows)
    t = load_triplets(path)
    assert list(t.anchor) == ["a0", "a1", "a2"]
    assert list(t.positive) == ["x0", "y1", "y2"]
    assert list(t.negative) == ["y0", "x1", "x2"]
    assert list(t.positive_start) == [2.0, 4.0, 4.0] and list(t.anchor_start) == [1.5] * 3
    np.testing.assert_allclose(t.agreement, [0.9, 1.0, 0.9])
    s = t.selection
    assert (s.n_read, s.n_kept, s.n_dropped_tie, s.n_dropped_low_agreement, s.n_dropped) == (7, 3, 2, 2, 4)
    assert s.source == str(path)
    loose = load_triplets(path, min_agreement=0.5)
    assert len(loose) == 5 and loose.selection.n_dropped_tie == 2  # ties dropped at any threshold
    with pytest.raises(InputError, match="min_agreement"):
        load_triplets(path, min_agreement=1.5)


def test_clean_file_rows_are_kept_as_given(tmp_path):
    path = write_csv(tmp_path / "clean.csv", [("a", "b", "c", 1, 0), ("a", "b", "c", 1, 0), ("d", "e", "f", 0, 1)])
    t = load_triplets(path)
    assert len(t) == 3 and list(t.triplet_id) == ["0", "1", "2"]


# --------------------------------------------------------------------------------------
# Generated triplets


def tag_labels(n=40, seed=1):
    rng = np.random.default_rng(seed)
    moods = ["sad", "happy", "chill", "party", "sexy"]
    labels = {}
    for i in range(n):
        k = int(rng.integers(0, 3))  # some tracks have no mood: they take no part
        labels[f"t{i:02d}"] = {"mood": list(rng.choice(moods, size=k, replace=False)), "genre": ["rock"]}
    return labels


def check_rules(labels, table, dimension):
    t = select_triplets(table, min_agreement=1.0)
    assert len(t) == len(table)  # clean votes: every row kept
    for a, p, q in zip(t.anchor, t.positive, t.negative):
        assert len({a, p, q}) == 3
        assert similar(dimension, labels[a][dimension], labels[p][dimension])
        assert labels[q][dimension] not in (None, [])
        assert not similar(dimension, labels[a][dimension], labels[q][dimension])
    assert len(set(zip(t.anchor, t.positive, t.negative))) == len(t)  # no triplet twice
    return t


def test_generated_triplets_obey_the_rules_and_the_seed():
    labels = tag_labels()
    table = generate_triplets(labels, "mood", 30, seed=3)  # few of all triplets: drawn by rejection
    check_rules(labels, table, "mood")
    again = generate_triplets(labels, "mood", 30, seed=3)
    other = generate_triplets(labels, "mood", 30, seed=4)
    for c in TRIPLET_COLUMNS:
        np.testing.assert_array_equal(getattr(again, c), getattr(table, c), err_msg=c)
    assert list(other.anchor_id) + list(other.song1_id) != list(table.anchor_id) + list(table.song1_id)
    assert 5 < table.song1_vote.sum() < 25  # which song is the positive is a coin flip


def test_generation_enumerates_when_most_triplets_are_asked():
    labels = tag_labels(n=12, seed=5)
    values = [v["mood"] for v in labels.values()]
    total = sum(similar("mood", a, p) and not similar("mood", a, q) and b != c
                for (b, a), (c, p), (_, q) in itertools.product(enumerate(values), repeat=3) if q)
    with pytest.raises(InputError, match=f"only {total} distinct"):
        generate_triplets(labels, "mood", total + 1)
    everything = check_rules(labels, generate_triplets(labels, "mood", total, seed=0), "mood")
    assert len(everything) == total
    # at_most (mdsim triplets --at-most): every distinct triplet when fewer than asked exist
    capped = check_rules(labels, generate_triplets(labels, "mood", total + 50, seed=0, at_most=True), "mood")
    assert len(capped) == total
    assert set(zip(capped.anchor, capped.positive, capped.negative)) == set(
        zip(everything.anchor, everything.positive, everything.negative))


def test_generated_tempo_triplets_count_octaves():
    labels = {"slow": {"tempo": 60.0}, "double": {"tempo": 122.0}, "quad": {"tempo": 242.0},
              "off": {"tempo": 90.0}, "off2": {"tempo": 100.0}, "none": {"tempo": None}}
    t = check_rules(labels, generate_triplets(labels, "tempo", 8, seed=0), "tempo")
    # 60, 122 and 242 BPM are within 5 BPM of each other's octaves; 90 and 100 match nothing
    assert set(t.anchor) | set(t.positive) <= {"slow", "double", "quad"}
    assert set(t.negative) <= {"off", "off2"} and "none" not in t.track_ids()


def test_generated_key_triplets_count_parallel_keys():
    labels = {"c_major": {"key": 0}, "c_minor": {"key": 12}, "d_major": {"key": 2}, "none": {"key": None}}
    t = check_rules(labels, generate_triplets(labels, "key", 2, seed=0), "key")
    assert set(zip(t.anchor, t.positive, t.negative)) == {("c_major", "c_minor", "d_major"),
                                                          ("c_minor", "c_major", "d_major")}


def test_generation_errors_name_the_problem():
    labels = {"a": {"key": 0}, "b": {"key": 0}}
    with pytest.raises(InputError, match="no key triplet can be formed"):
        generate_triplets(labels, "key", 1)
    with pytest.raises(InputError, match="'colour'"):
        generate_triplets(labels, "colour", 1)
    with pytest.raises(InputError, match="no labels.*zzz"):
        generate_triplets(labels, "key", 1, track_ids=["a", "zzz"])


def test_generated_triplets_round_trip_with_offsets(tmp_path):
    labels = tag_labels()
    durations = {t: 2.0 if i == 0 else 10.0 + i for i, t in enumerate(sorted(labels))}
    subset = sorted(labels)[:30]
    table = generate_triplets(labels, "mood", 25, seed=9, durations=durations, track_ids=subset)
    path = write_triplets(tmp_path / "gen.csv", table)
    back = read_triplets(path)
    for c in TRIPLET_COLUMNS:
        np.testing.assert_array_equal(getattr(back, c), getattr(table, c), err_msg=c)
    for role in ("anchor", "song1", "song2"):
        ids, sec, smp = (getattr(back, f"{role}_{s}") for s in ("id", "start_seconds", "start_samples"))
        assert set(ids) <= set(subset)
        np.testing.assert_allclose(sec * 22050, smp, rtol=0, atol=1e-6)
        limit = np.array([max(durations[t] - 3.0, 0.0) for t in ids])
        assert (sec >= 0).all() and (sec <= limit).all()
    assert back.clip_lengths_samples[0] == 66150 and back.sampling_rate[0] == 22050
    assert any(back.anchor_start_seconds > 0)
    with pytest.raises(InputError, match="no duration"):
        generate_triplets(labels, "mood", 5, durations={})


# --------------------------------------------------------------------------------------
# Scores


def test_number_of_combinations():
    assert len(combinations(DIMENSIONS)) == 63 and combination_matrix(6).shape == (63, 6)
    assert len(combinations(DIMENSIONS[:4])) == 15
    assert combinations(["a", "b", "c"]) == [("a",), ("b",), ("c",), ("a", "b"), ("a", "c"), ("b", "c"),
                                            ("a", "b", "c")]
    assert (combination_matrix(3).sum(axis=1) == [1, 1, 1, 2, 2, 2, 3]).all()


def test_scores_known_by_construction(genre_era_case):
    source, triplets = genre_era_case
    result = evaluate(triplets, source, distance="paper", n_bootstrap=200)
    assert len(result["combinations"]) == 63
    for c in result["combinations"]:
        assert c["score"] == pytest.approx(expected_genre_era(c["dims"]), abs=ATOL), c["dims"]
        assert c["n_correct"] == round(10 * expected_genre_era(c["dims"]))
    assert result["full"]["score"] == pytest.approx(0.6, abs=ATOL)  # all six: genre + era tie on 6-7
    ranked = result["combinations"]
    assert ranked[0]["dims"] == ["genre"] and ranked[0]["rank"] == 1  # 16 combos share 0.8; fewest dims first
    assert [c["rank"] for c in ranked].count(1) == 16 and ranked[16]["rank"] == 17
    assert ranked[-1]["rank"] == 49 and ranked[-1]["score"] == 0.0
    assert result["triplets"]["n_scored"] == 10 and result["missing_tracks"] == []


def test_four_dimensions_give_15_combinations(genre_era_case):
    source, triplets = genre_era_case
    four = EmbeddingSet(source.track_ids, source.embeddings[:, :8], dimensions=DIMENSIONS[:4])
    result = evaluate(triplets, four, distance="paper", n_bootstrap=0)
    assert len(result["combinations"]) == 15
    assert {tuple(c["dims"]): c["score"] for c in result["combinations"]}[("genre",)] == pytest.approx(0.8)
    assert result["full"]["ci_low"] is None


def test_scores_match_brute_force_with_uneven_slices():
    rng = np.random.default_rng(0)
    n, width = 60, 17
    slices = [(0, 3), (3, 4), (4, 9), (10, 14), (14, 17)]  # column 9 in no subspace
    dims = ["genre", "mood", "era", "tempo", "key"]
    ids = [f"t{i}" for i in range(3 * n)]
    x = rng.normal(size=(3 * n, width)).astype(np.float32)
    triplets = Triplets(anchor=ids[:n], positive=ids[n:2 * n], negative=ids[2 * n:])
    result = evaluate(triplets, EmbeddingSet(ids, x, dimensions=dims, slices=slices), distance="paper",
                      n_bootstrap=0)
    oracle = brute_force_scores(dict(zip(ids, x.astype(np.float64))), triplets, dims, slices)
    got = {tuple(c["dims"]): c["score"] for c in result["combinations"]}
    assert got.keys() == oracle.keys()
    for key in oracle:
        assert got[key] == pytest.approx(oracle[key], abs=ATOL), key
    d = np.linalg.norm(x[:n] - x[n:2 * n], axis=1) < np.linalg.norm(x[:n] - x[2 * n:], axis=1)
    assert result["full"]["score"] == pytest.approx(d.mean(), abs=ATOL)
    assert 0.2 < result["full"]["score"] < 0.8  # random data: the oracle is not trivially 0 or 1


def test_identical_items_and_constant_embeddings():
    ids = ["a", "p", "n"]
    perfect = EmbeddingSet(ids, [[0, 0], [0, 0], [1, 1]], dimensions=["genre", "mood"])
    constant = EmbeddingSet(ids, [[1, 1], [1, 1], [1, 1]], dimensions=["genre", "mood"])
    t = Triplets(anchor=["a"], positive=["p"], negative=["n"])
    assert evaluate(t, perfect, n_bootstrap=0)["full"]["score"] == 1.0
    assert evaluate(t, constant, n_bootstrap=0)["full"]["score"] == 0.0  # ties are incorrect


def test_bootstrap_is_seeded_and_brackets_the_score():
    rng = np.random.default_rng(1)
    correct = rng.random((200, 3)) < [0.5, 0.8, 1.0]
    low, high = bootstrap_ci(correct, n_resamples=500, seed=7)
    low2, high2 = bootstrap_ci(correct, n_resamples=500, seed=7)
    low3, _ = bootstrap_ci(correct, n_resamples=500, seed=8)
    np.testing.assert_array_equal(low, low2)
    np.testing.assert_array_equal(high, high2)
    assert not np.array_equal(low, low3)
    mean = correct.mean(axis=0)
    assert (low <= mean).all() and (mean <= high).all()
    assert low[2] == high[2] == 1.0
    # binomial standard error sqrt(p(1-p)/n): the 95 % interval is about +-1.96 of it
    width = high[:2] - low[:2]
    expected = 2 * 1.96 * np.sqrt(mean[:2] * (1 - mean[:2]) / 200)
    np.testing.assert_allclose(width, expected, rtol=0.25)


def test_missing_tracks_reported_or_strict(genre_era_case):
    source, triplets = genre_era_case
    keep = [t not in ("p3", "n7") for t in source.track_ids]
    partial = EmbeddingSet(source.track_ids[keep], source.embeddings[keep], dimensions=DIMENSIONS)
    result = evaluate(triplets, partial, n_bootstrap=0)
    assert result["missing_tracks"] == ["n7", "p3"]
    assert result["triplets"]["n_dropped_missing"] == 2 and result["triplets"]["n_scored"] == 8
    with pytest.raises(InputError, match=r"2 track\(s\) .* e\.g\. n7, p3"):
        evaluate(triplets, partial, strict=True)
    nothing = EmbeddingSet(["zz"], [[0.0] * 12], dimensions=DIMENSIONS)
    with pytest.raises(InputError, match="none of the 10 triplets"):
        evaluate(triplets, nothing)


def test_clip_mode_uses_start_times():
    t = Triplets(anchor=["a"], positive=["b"], negative=["c"], anchor_start=[0.0], positive_start=[3.0],
                 negative_start=[6.0])
    # at the triplet's start times b is closer; at time 0 c would be
    vectors = {("a", 0.0): [0.0, 0.0], ("b", 3.0): [1.0, 0.0], ("c", 6.0): [2.0, 0.0],
               ("b", 0.0): [5.0, 0.0], ("c", 0.0): [0.5, 0.0]}
    mapping = ClipEmbeddings(vectors, dimensions=["genre", "mood"])
    # 1-d subspaces: under "normalised" only their signs would count
    assert evaluate(t, mapping, mode="clip", distance="paper", n_bootstrap=0)["full"]["score"] == 1.0
    calls = []

    def embed(track_id, start_seconds):
        calls.append((track_id, start_seconds))
        return vectors[(track_id, start_seconds)]

    by_call = ClipEmbeddings(embed, track_ids={"a", "b", "c"}, name="callable")
    result = evaluate(t, by_call, mode="clip", distance="paper", n_bootstrap=0)
    assert result["full"]["score"] == 1.0 and result["model"] == "callable" and result["combinations"] == []
    assert sorted(calls) == [("a", 0.0), ("b", 3.0), ("c", 6.0)]
    with pytest.raises(InputError, match="start time"):
        evaluate(t, mapping, mode="track")
    with pytest.raises(InputError, match="track_ids"):
        ClipEmbeddings(embed)


def test_track_embedding_is_the_segment_mean():
    segments = np.array([[1.0, 2.0], [3.0, 6.0]])
    np.testing.assert_array_equal(track_embedding(segments), [2.0, 4.0])
    with pytest.raises(InputError, match="n_segments"):
        track_embedding(np.zeros((0, 4)))


# --------------------------------------------------------------------------------------
# Embeddings files


@pytest.mark.parametrize("suffix", [".h5", ".npz"])
def test_embeddings_file_round_trip(tmp_path, suffix):
    x = np.arange(24, dtype=np.float32).reshape(4, 6)
    path = write_embeddings(tmp_path / f"e{suffix}", ["α", "b", "c", "d"], x, dimensions=["genre", "tempo"],
                            slices=[(0, 4), (4, 6)], metadata={"model": "peer"})
    es = read_embeddings(path)
    assert es.track_ids.tolist() == ["α", "b", "c", "d"] and es.embeddings.dtype == np.float32
    np.testing.assert_array_equal(es.embeddings, x)
    assert es.dimensions == ("genre", "tempo") and es.slices == ((0, 4), (4, 6)) and es.name == "peer"
    plain = read_embeddings(write_embeddings(tmp_path / f"plain{suffix}", ["a"], [[1.0, 2.0]]))
    assert plain.dimensions == () and plain.name == "plain"


def test_embeddings_without_slices_score_full_only(tmp_path, genre_era_case):
    source, triplets = genre_era_case
    path = write_embeddings(tmp_path / "peer.npz", source.track_ids, source.embeddings)
    result = evaluate(triplets, read_embeddings(path), distance="paper", n_bootstrap=0)
    assert result["dimensions"] == [] and result["combinations"] == []
    assert result["full"]["score"] == pytest.approx(0.6) and result["model"] == "peer"


def test_bad_embeddings_files(tmp_path):
    with pytest.raises(InputError, match="cannot split a 5-d embedding into 2"):
        write_embeddings(tmp_path / "e.h5", ["a"], np.zeros((1, 5)), dimensions=["genre", "mood"])
    with pytest.raises(InputError, match="overlap"):
        write_embeddings(tmp_path / "e.h5", ["a"], np.zeros((1, 5)), dimensions=["genre", "mood"],
                         slices=[(0, 3), (2, 5)])
    with pytest.raises(InputError, match="twice: a"):
        write_embeddings(tmp_path / "e.h5", ["a", "a"], np.zeros((2, 2)))
    np.savez(tmp_path / "odd.npz", vectors=np.zeros((2, 2)))
    with pytest.raises(StoreError, match="odd.npz is not a valid embeddings file: missing 'track_ids"):
        read_embeddings(tmp_path / "odd.npz")
    with pytest.raises(StoreError, match="does not exist"):
        read_embeddings(tmp_path / "none.h5")


# --------------------------------------------------------------------------------------
# Reports


def test_markdown_table_like_table_2(genre_era_case):
    source, triplets = genre_era_case
    result = evaluate(triplets, source, distance="paper", n_bootstrap=50)
    text = markdown_table(result, top=6)
    assert "| Rank | Genre | Mood | Inst. | Era | Tempo | Key | Triplet score [95 % CI] |" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| Rank")]
    assert len(rows) == 6 + 6
    assert rows[0].startswith("| 1 | \u2713 |  |  |  |  |  | 0.8000")
    assert "10 triplets scored" in text
    assert len([r for r in markdown_table(result).splitlines() if r.startswith("| ")]) == 2 + 63 + 6


def test_reports_json_chart_and_compare(tmp_path, genre_era_case):
    source, triplets = genre_era_case
    a = evaluate(triplets, source, distance="paper", n_bootstrap=100, model_name="six")
    four = EmbeddingSet(source.track_ids, source.embeddings[:, :8], dimensions=DIMENSIONS[:4])
    b = evaluate(triplets.take(slice(0, 8)), four, distance="paper", n_bootstrap=100, model_name="four")
    paths = write_report(a, tmp_path / "one")
    assert read_results(paths["json"]) == [json.loads(json.dumps(a))]
    png = paths["radar"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    from matplotlib.image import imread

    pixels = (imread(paths["radar"])[..., :3] * 255).astype(np.int64)
    colours = np.unique(pixels[..., 0] * 65536 + pixels[..., 1] * 256 + pixels[..., 2])
    assert pixels.std() > 10 and len(colours) > 50  # drawn, anti-aliased: not a blank or flat image
    table = compare_table([a, b])
    assert "| Subspaces | six | four |" in table and "| Tempo | 0.0000" in table and "\u2013" in table
    assert "different numbers of triplets" in table
    both = write_report([a, b], tmp_path / "cmp", name="compare")
    assert [r["model"] for r in read_results(both["json"])] == ["six", "four"]
    assert both["radar"].stat().st_size > 10_000
    with pytest.raises(InputError, match="no named subspaces"):
        radar_chart({**a, "dimensions": [], "combinations": []}, tmp_path / "x.png")


def test_result_schema_keys_are_stable(genre_era_case):
    source, triplets = genre_era_case
    result = evaluate(triplets, source, n_bootstrap=10)
    assert list(result) == ["schema", "model", "mode", "distance", "ties", "triplets", "missing_tracks",
                            "dimensions", "slices", "bootstrap", "full", "combinations"]
    assert list(result["triplets"]) == ["source", "min_agreement", "n_read", "n_kept", "n_dropped_tie",
                                        "n_dropped_low_agreement", "n_dropped_missing", "n_scored"]
    assert list(result["full"]) == ["score", "ci_low", "ci_high", "n_correct"]
    assert list(result["combinations"][0]) == ["dims", "score", "ci_low", "ci_high", "n_correct", "rank"]
    json.dumps(result)  # serialisable as is


# --------------------------------------------------------------------------------------
# The two distances


def norm_dominated_case():
    """One triplet, mood in columns 0-1, tempo in 2-3 with norms ten times larger.

    mood:  a = (1, 0), p = (1, 0), n = (-1, 0)      p right, n opposite
    tempo: a = (10, 0), p = (0, 10), n = (20, 0)    p orthogonal, n same direction, farther
    Raw (paper): d(a, p)^2 = 0 + 200 > d(a, n)^2 = 4 + 100: tempo's norms decide, wrong.
    Normalised:  2(1 - cos) sums to 0 + 2 = 2 < 4 + 0 = 4: right (mood says more than tempo).
    """
    ids = ["a", "p", "n"]
    x = [[1, 0, 10, 0], [1, 0, 0, 10], [-1, 0, 20, 0]]
    return EmbeddingSet(ids, x, dimensions=["mood", "tempo"]), Triplets(anchor=["a"], positive=["p"], negative=["n"])


def test_normalised_and_paper_distances_differ_where_norms_differ():
    source, t = norm_dominated_case()
    paper = evaluate(t, source, distance="paper", n_bootstrap=0)
    normalised = evaluate(t, source, n_bootstrap=0)  # the default
    scores = {name: {tuple(c["dims"]): c["score"] for c in r["combinations"]}
              for name, r in (("paper", paper), ("normalised", normalised))}
    assert paper["full"]["score"] == 0.0 and scores["paper"][("mood", "tempo")] == 0.0
    assert normalised["full"]["score"] == 1.0 and scores["normalised"][("mood", "tempo")] == 1.0
    assert scores["paper"][("mood",)] == scores["normalised"][("mood",)] == 1.0
    assert paper["distance"] == "euclidean" and normalised["distance"] == "normalised-euclidean"
    assert "L2-normalised slices" in markdown_table(normalised) and "paper's protocol" in markdown_table(paper)
    # normalised scores do not change when a subspace is scaled; the paper's do
    scaled = EmbeddingSet(source.track_ids, source.embeddings * [100, 100, 1, 1], dimensions=["mood", "tempo"])
    assert evaluate(t, scaled, n_bootstrap=0)["full"]["score"] == 1.0
    assert evaluate(t, scaled, distance="paper", n_bootstrap=0)["full"]["score"] == 1.0
    with pytest.raises(InputError, match="distance is 'cosine', expected one of normalised, paper"):
        evaluate(t, source, distance="cosine")


def test_normalised_scores_match_brute_force_with_uneven_slices():
    """Oracle: L2-normalise every slice of the combination, concatenate, compare Euclidean norms."""
    rng = np.random.default_rng(1)
    n = 60
    slices = [(0, 3), (3, 5), (5, 9), (10, 14)]  # column 9 in no subspace
    dims = ["genre", "mood", "tempo", "key"]
    ids = [f"t{i}" for i in range(3 * n)]
    x = rng.normal(size=(3 * n, 14)) * rng.uniform(0.1, 10, size=(3 * n, 1))
    unit = x.copy()
    for a, b in slices:
        unit[:, a:b] /= np.linalg.norm(x[:, a:b], axis=1, keepdims=True)
    unit[:, 9] = 0.0
    triplets = Triplets(anchor=ids[:n], positive=ids[n:2 * n], negative=ids[2 * n:])
    result = evaluate(triplets, EmbeddingSet(ids, x, dimensions=dims, slices=slices), n_bootstrap=0)
    oracle = brute_force_scores(dict(zip(ids, unit)), triplets, dims, slices)
    got = {tuple(c["dims"]): c["score"] for c in result["combinations"]}
    for key in oracle:
        assert got[key] == pytest.approx(oracle[key], abs=ATOL), key
    assert result["full"]["score"] == pytest.approx(oracle[tuple(dims)], abs=ATOL)
    assert 0.2 < result["full"]["score"] < 0.8


def test_no_usable_triplets_says_why(tmp_path):
    """A file whose triplets are all ties or below the agreement is named, with the counts."""
    path = write_triplets(tmp_path / "weak.csv", TripletTable(
        triplet_id=["t1", "t2", "t3"], anchor_id=["a"] * 3, anchor_start_seconds=[0] * 3,
        anchor_start_samples=[0] * 3, song1_id=["b"] * 3, song1_start_seconds=[0] * 3,
        song1_start_samples=[0] * 3, song2_id=["c"] * 3, song2_start_seconds=[0] * 3,
        song2_start_samples=[0] * 3, sampling_rate=[22050] * 3, clip_lengths_seconds=[3.0] * 3,
        clip_lengths_samples=[66150] * 3, song1_vote=[2, 3, 0], song2_vote=[2, 2, 0]))
    source = EmbeddingSet(["a", "b", "c"], np.eye(3), dimensions=())
    with pytest.raises(InputError, match=r"no triplets to score: .*weak\.csv has 3 row\(s\) and none was kept "
                                         r"\(2 tie\(s\), 1 below agreement 0\.9\); lower the minimum agreement"):
        evaluate(load_triplets(path), source)
    with pytest.raises(InputError, match="no triplets to score: the Triplets given are empty"):
        evaluate(Triplets(anchor=[], positive=[], negative=[]), source)
