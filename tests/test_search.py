"""mdsim.search: weighted per-subspace search against a brute-force NumPy oracle."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from mdsim.errors import InputError, StoreError
from mdsim.labels import DIMENSIONS, key_harmonic, key_name, key_similar, parse_key
from mdsim.search import Catalog, Filters, build_catalog
from mdsim.search import catalog as catalog_module

ATOL = 1e-5  # float32 inner products against a float64 oracle
WIDTH = 8    # per subspace


def make_vectors(rng, n, dims=DIMENSIONS, width=WIDTH):
    """Vectors whose blocks have wildly different norms, so a missing per-block
    normalisation changes the ranking."""
    x = rng.standard_normal((n, len(dims) * width)).astype(np.float32)
    scale = np.repeat(10.0 ** rng.uniform(-2, 2, size=(n, len(dims))), width, axis=1)
    return (x * scale).astype(np.float32)


def make_labels(rng, ids):
    labels, groups = {}, {}
    for i, t in enumerate(ids):
        labels[t] = {"mood": [rng.choice(["sad", "happy", "chill"])],
                     "tempo": None if i % 7 == 0 else float(rng.uniform(60, 180)),
                     "key": None if i % 5 == 0 else int(rng.integers(0, 24))}
        groups[t] = f"artist{i % 9}"
    return labels, groups


def oracle(x, q, weights, dims=DIMENSIONS, width=WIDTH):
    """Σ_k w_k cos_k / Σ w, one row at a time in float64: the definition."""
    total = np.zeros(len(x))
    for i, row in enumerate(x.astype(np.float64)):
        for j, d in enumerate(dims):
            a, b = row[j * width:(j + 1) * width], q[j * width:(j + 1) * width].astype(np.float64)
            total[i] += weights.get(d, 0.0) * (a @ b) / (np.linalg.norm(a) * np.linalg.norm(b))
    return total / sum(weights.values())


@pytest.fixture
def data(rng):
    n = 400
    ids = [f"t{i:03d}" for i in range(n)]
    x = make_vectors(rng, n)
    labels, groups = make_labels(rng, ids)
    return ids, x, labels, groups


WEIGHTINGS = [{d: 1.0 for d in DIMENSIONS}, {"mood": 1.0, "tempo": 0.5}, {"key": 1.0},
              {"genre": 0.1, "instrument": 3.0, "era": 0.0, "mood": 2.0}]


@pytest.mark.parametrize("weights", WEIGHTINGS)
def test_flat_search_is_the_weighted_mean_of_subspace_cosines(data, rng, weights):
    ids, x, _, _ = data
    cat = Catalog(ids, x, dimensions=DIMENSIONS)
    q = make_vectors(rng, 1)[0]
    hits = cat.search(q, weights=weights, k=10)
    expected = oracle(x, q, weights)
    order = np.argsort(-expected)[:10]
    assert [h.track_id for h in hits] == [ids[i] for i in order]
    np.testing.assert_allclose([h.score for h in hits], expected[order], atol=ATOL)
    # per-dimension scores are the plain cosines, whatever the weight
    top = order[0]
    for j, d in enumerate(DIMENSIONS):
        a, b = x[top, j * WIDTH:(j + 1) * WIDTH], q[j * WIDTH:(j + 1) * WIDTH]
        assert hits[0].scores[d] == pytest.approx(a @ b / np.linalg.norm(a) / np.linalg.norm(b), abs=ATOL)


def test_weights_scale_free_and_dims_mean_equal_weights(data, rng):
    ids, x, _, _ = data
    cat = Catalog(ids, x, dimensions=DIMENSIONS)
    q = make_vectors(rng, 1)[0]
    a = cat.search(q, weights={"mood": 2.0, "tempo": 2.0}, k=5)
    b = cat.search(q, dims=["mood", "tempo"], k=5)
    assert [h.track_id for h in a] == [h.track_id for h in b]
    np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=ATOL)


def test_query_by_track_id_excludes_itself_unless_asked(data):
    ids, x, _, _ = data
    cat = Catalog(ids, x, dimensions=DIMENSIONS)
    hits = cat.search("t005", k=3)
    assert "t005" not in [h.track_id for h in hits]
    expected = oracle(x, x[5], {d: 1.0 for d in DIMENSIONS})
    expected[5] = -np.inf
    assert [h.track_id for h in hits] == [ids[i] for i in np.argsort(-expected)[:3]]
    same = cat.search("t005", k=1, filters=Filters(exclude_query=False))
    assert same[0].track_id == "t005" and same[0].score == pytest.approx(1.0, abs=ATOL)


def brute_filtered(x, ids, labels, groups, query_index, weights, filters):
    scores = oracle(x, x[query_index], weights)
    keep = []
    qkey = labels[ids[query_index]]["key"]
    for i, t in enumerate(ids):
        lab = labels[t]
        ok = i != query_index
        if filters.exclude_group:
            ok &= groups[t] != groups[ids[query_index]]
        if filters.tempo_range:
            ok &= lab["tempo"] is not None and filters.tempo_range[0] <= lab["tempo"] <= filters.tempo_range[1]
        ref = filters.key if filters.key is not None else (qkey if filters.key_compatible else None)
        if ref is not None:
            ok &= lab["key"] is not None and (key_similar(lab["key"], ref) if filters.key_compatible
                                              else lab["key"] == ref)
        if filters.min_score is not None:
            ok &= scores[i] >= filters.min_score
        keep.append(ok)
    keep = np.array(keep)
    order = [i for i in np.argsort(-scores) if keep[i]]
    return [ids[i] for i in order], scores


FILTERS = [Filters(exclude_group=True), Filters(tempo_range=(90, 120)), Filters(key="A minor"),
           Filters(key_compatible=True), Filters(key="C major", key_compatible=True),
           Filters(min_score=0.2), Filters(exclude_group=True, tempo_range=(70, 160), key_compatible=True)]


@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: ",".join(
    f"{k}={v}" for k, v in vars(f).items() if v not in (None, False, True) or k.startswith(("exclude_g", "key_c"))
    and v))
@pytest.mark.parametrize("small_subset", [catalog_module.SMALL_SUBSET, 0], ids=["numpy-subset", "faiss-selector"])
def test_filters_match_brute_force(data, monkeypatch, filters, small_subset):
    monkeypatch.setattr(catalog_module, "SMALL_SUBSET", small_subset)
    ids, x, labels, groups = data
    cat = Catalog(ids, x, dimensions=DIMENSIONS, labels=labels, groups=groups)
    query = 1  # has tempo and key (i % 7, i % 5 != 0)
    weights = {"mood": 1.0, "tempo": 0.5}
    hits = cat.search(ids[query], weights=weights, k=15, filters=filters)
    expected, scores = brute_filtered(x, ids, labels, groups, query, weights, filters)
    assert [h.track_id for h in hits] == expected[:15]
    assert len(hits) > 0
    for h in hits:  # what travels with the index is what the filter looked at
        assert h.labels["key"] == labels[h.track_id]["key"] and h.group == groups[h.track_id]


def block_normalised(x, dims=DIMENSIONS, width=WIDTH):
    """Each subspace block of each row scaled to unit norm, float64 (the oracle's own)."""
    out = np.array(x, dtype=np.float64, ndmin=2)
    for j in range(len(dims)):
        block = out[:, j * width:(j + 1) * width]
        block /= np.linalg.norm(block, axis=1, keepdims=True)
    return out


def brute_reranked(x, ids, labels, groups, seeds, weights, filters, k):
    """The new filters by their definitions, one track at a time: the query is the mean of the
    seeds' normalised vectors, the first seed gives tempo and key; then the ranked list is
    walked once, keeping a track unless its group is full (played tracks counted) or it is a
    near duplicate of a seed, a played track or a kept one."""
    q = block_normalised(x[seeds]).mean(axis=0)
    scores = oracle(x, q, weights)
    tempo0, key0 = labels[ids[seeds[0]]]["tempo"], labels[ids[seeds[0]]]["key"]
    unit = block_normalised(x)
    played = [ids.index(t) for t in filters.played]
    kept, per_group = [], {}
    for i in played:
        per_group[groups[ids[i]]] = per_group.get(groups[ids[i]], 0) + 1
    for i in np.argsort(-scores, kind="stable"):
        lab = labels[ids[i]]
        if i in seeds or ids[i] in filters.exclude_ids or i in played:
            continue
        if filters.tempo_tolerance is not None:
            tol = filters.tempo_tolerance / 100
            if lab["tempo"] is None or not any(abs(lab["tempo"] - tempo0 * m) <= tempo0 * m * tol
                                               for m in (0.5, 1, 2)):
                continue
        if filters.harmonic and (lab["key"] is None or not key_harmonic(lab["key"], key0)):
            continue
        if filters.max_per_group is not None and per_group.get(groups[ids[i]], 0) >= filters.max_per_group:
            continue
        if filters.dedupe is not None and any(unit[i] @ unit[j] / len(DIMENSIONS) >= filters.dedupe
                                              for j in list(seeds) + played + kept):
            continue
        kept.append(i)
        per_group[groups[ids[i]]] = per_group.get(groups[ids[i]], 0) + 1
        if len(kept) == k:
            break
    return [ids[i] for i in kept]


@pytest.fixture
def with_duplicates(data, rng):
    """The data plus a slightly changed copy of 40 tracks (other versions of them)."""
    ids, x, labels, groups = data
    copies = rng.choice(len(ids), 40, replace=False)
    new = [f"{ids[i]}-v2" for i in copies]
    x2 = np.concatenate([x, x[copies] * (1 + 0.01 * rng.standard_normal(x[copies].shape))]).astype(np.float32)
    labels = dict(labels, **{n: labels[ids[i]] for n, i in zip(new, copies)})
    groups = dict(groups, **{n: groups[ids[i]] for n, i in zip(new, copies)})
    return ids + new, x2, labels, groups, copies


RERANKED = [Filters(max_per_group=1), Filters(max_per_group=2), Filters(dedupe=0.9), Filters(dedupe=0.3),
            Filters(tempo_tolerance=8), Filters(harmonic=True), Filters(exclude_ids=("t001", "t002", "t003")),
            Filters(tempo_tolerance=10, harmonic=True, max_per_group=1, dedupe=0.5),
            Filters(played=("t002", "t004", "t013", "t022"), max_per_group=2, dedupe=0.3)]


@pytest.mark.parametrize("filters", RERANKED, ids=lambda f: ",".join(
    f"{k}={v}" for k, v in vars(f).items() if v not in (None, False, True, ()) or (k == "harmonic" and v)))
@pytest.mark.parametrize("small_subset", [catalog_module.SMALL_SUBSET, 0], ids=["numpy-subset", "faiss-selector"])
@pytest.mark.parametrize("seeds", [[1], [1, 6, 11]], ids=["one-seed", "three-seeds"])
def test_reranking_filters_and_seeds_match_brute_force(with_duplicates, monkeypatch, filters, small_subset, seeds):
    monkeypatch.setattr(catalog_module, "SMALL_SUBSET", small_subset)
    ids, x, labels, groups, _ = with_duplicates
    cat = Catalog(ids, x, dimensions=DIMENSIONS, labels=labels, groups=groups)
    weights = {"mood": 1.0, "tempo": 0.5, "genre": 0.2}
    query = ids[seeds[0]] if len(seeds) == 1 else [ids[i] for i in seeds]
    hits = cat.search(query, weights=weights, k=12, filters=filters)
    assert [h.track_id for h in hits] == brute_reranked(x, ids, labels, groups, seeds, weights, filters, 12)
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1)) and hits


def test_reranking_filters_fetch_beyond_the_first_candidates(with_duplicates):
    """One artist fills the top 50: its best track, then the only other artist's, at the bottom."""
    x = np.zeros((51, 12), np.float32)
    x[:50, 0] = x[:50, 6] = 1
    x[:50, 1] = np.arange(50) / 1000  # a0 closest to the query, a49 farthest; all within 0.999
    x[50] = [-1, 0, 0, 0, 0, 0, -1, 0, 0, 0, 0, 0]
    ids = [f"a{i}" for i in range(50)] + ["b0"]
    cat = Catalog(ids, x, dimensions=["mood", "tempo"], groups={t: t[0] for t in ids})
    query = np.array([1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0], np.float32)
    assert [h.track_id for h in cat.search(query, k=2, filters=Filters(max_per_group=1))] == ["a0", "b0"]
    assert [h.track_id for h in cat.search(query, k=3, filters=Filters(dedupe=0.99))] == ["a0", "b0"]
    ids, x, labels, groups, copies = with_duplicates
    cat = Catalog(ids, x, dimensions=DIMENSIONS, labels=labels, groups=groups)
    hits = cat.search("t001", k=30, filters=Filters(max_per_group=1))
    assert sorted(h.group for h in hits) == sorted(set(groups.values()) - {""})  # all 9, the query's too
    everything = cat.search(ids[copies[0]], k=len(ids), filters=Filters(dedupe=0.9))
    found = [h.track_id for h in everything]
    assert f"{ids[copies[0]]}-v2" not in found  # the query's other version is no result
    assert len(found) == 400 - 1 and not any(f"{ids[i]}-v2" in found and ids[i] in found for i in copies)


def brute_tempo_filtered(x, tempi, keys, groups, query, weights, filters):
    """``[(track row, score)]`` by the filters' definitions, one track at a time: the query
    row's tempo and key are compared with; the ranked list is walked once, keeping a track
    unless its group is full or it is a near duplicate of the query or a kept track."""
    scores = oracle(x, block_normalised(x)[query], weights)
    unit = block_normalised(x)
    kept, per_group = [], {}
    for i in np.argsort(-scores, kind="stable"):
        tempo, key = tempi[i], keys[i]
        if i == query or f"t{i:03d}" in filters.exclude_ids:
            continue
        if filters.exclude_group and groups[i] == groups[query]:
            continue
        if filters.tempo_range is not None and not filters.tempo_range[0] <= tempo <= filters.tempo_range[1]:
            continue  # NaN (unknown) fails every comparison
        pct, t0 = filters.tempo_tolerance, tempi[query]
        if pct is not None and not any(abs(tempo - t0 * m) <= t0 * m * pct / 100 for m in (0.5, 1, 2)):
            continue
        if filters.harmonic and (key < 0 or not key_harmonic(key, keys[query])):
            continue
        if filters.min_score is not None and scores[i] < filters.min_score:
            break
        if filters.max_per_group is not None and per_group.get(groups[i], 0) >= filters.max_per_group:
            continue
        if filters.dedupe is not None and any(unit[i] @ unit[j] / len(DIMENSIONS) >= filters.dedupe
                                              for j in [query] + [j for j, _ in kept]):
            continue
        kept.append((i, scores[i]))
        per_group[groups[i]] = per_group.get(groups[i], 0) + 1
    return kept


#: Tempo filters whose bands end on tempi that the catalogs hold (whole BPM, the query at 100):
#: a block one row too short or too long keeps or drops a track the reference does not.
TEMPO_FILTERS = [Filters(tempo_range=(100, 110)), Filters(tempo_range=(0, 60)), Filters(tempo_range=(150, np.inf)),
                 Filters(tempo_tolerance=10), Filters(tempo_tolerance=40),  # bands 30-70, 60-140, 120-280 overlap
                 Filters(tempo_range=(50, 200), tempo_tolerance=10),
                 Filters(tempo_tolerance=10, exclude_ids=("t003", "t004", "t010"), exclude_group=True),
                 Filters(tempo_range=(60, 160), harmonic=True, min_score=-0.05),
                 Filters(tempo_tolerance=20, max_per_group=1, dedupe=0.3)]


@pytest.mark.parametrize("filters", TEMPO_FILTERS, ids=lambda f: ",".join(
    f"{k}={v}" for k, v in vars(f).items()
    if v not in (None, False, True, ()) or (k in ("harmonic", "exclude_group") and v)))
@pytest.mark.parametrize("tempo_sorted,share", [(True, 1.0), (True, catalog_module.TEMPO_BLOCKS_SHARE), (False, 1.0)],
                         ids=["tempo-blocks", "blocks-when-narrow", "mask"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tempo_filters_match_brute_force_at_the_band_edges(monkeypatch, filters, tempo_sorted, share, seed):
    """Every track the filters keep, in order, with its score (k is the catalog's size):
    whole-BPM tempi put several tracks on each band's edge, and 1 in 8 has no tempo."""
    monkeypatch.setattr(catalog_module, "TEMPO_BLOCKS_SHARE", share)
    rng = np.random.default_rng(seed)
    n = 300
    ids = [f"t{i:03d}" for i in range(n)]
    x = make_vectors(rng, n)
    tempi = rng.integers(25, 300, n).astype(float)
    tempi[rng.random(n) < 0.125] = np.nan
    tempi[0] = 100.0
    keys = rng.integers(-1, 24, n)
    keys[0] = 9
    groups = [f"artist{g}" for g in rng.integers(0, 12, n)]
    labels = {t: {"tempo": tempi[i], "key": int(keys[i]) if keys[i] >= 0 else None} for i, t in enumerate(ids)}
    cat = Catalog(ids, x, dimensions=DIMENSIONS, labels=labels, groups=dict(zip(ids, groups)))
    cat.tempo_sorted = tempo_sorted
    weights = {"mood": 1.0, "tempo": 0.5}
    hits = cat.search("t000", weights=weights, k=n, filters=filters)
    expected = brute_tempo_filtered(x, tempi, keys, groups, 0, weights, filters)
    assert [h.track_id for h in hits] == [ids[i] for i, _ in expected]
    np.testing.assert_allclose([h.score for h in hits], [s for _, s in expected], atol=ATOL)
    assert len(hits) >= 3  # the filters leave tracks to compare
    assert cat.search("t000", weights=weights, k=3, filters=filters) == hits[:3]


def test_inner_products_of_row_blocks_match_float64(rng):
    """FAISS's kernel over a block that starts inside the array reads that block's rows."""
    from mdsim.search.index import inner_products

    x, q = rng.standard_normal((500, 48)).astype(np.float32), rng.standard_normal(48).astype(np.float32)
    for start, stop in [(0, 500), (17, 303), (499, 500), (5, 5)]:
        want = x[start:stop].astype(np.float64) @ q.astype(np.float64)
        np.testing.assert_allclose(inner_products(x[start:stop], q), want, atol=ATOL)
    with pytest.raises(InputError, match="widths differ"):
        inner_products(x, q[:40])


def test_tempo_order_follows_added_and_removed_tracks(data):
    ids, x, labels, groups = data
    cat = Catalog(ids, x, dimensions=DIMENSIONS, labels=labels)
    kept = Filters(tempo_range=(100, 120))
    before = [h.track_id for h in cat.search("t001", k=len(ids), filters=kept)]
    cat.add(["new"], x[1:2] * 2, labels={"new": {"tempo": 110.0}})
    assert cat.search("t001", k=1, filters=kept)[0].track_id == "new"  # the same direction as t001
    cat.remove(["new", before[0]])
    assert [h.track_id for h in cat.search("t001", k=len(ids), filters=kept)] == before[1:]


def test_new_filters_refuse_bad_values_and_unknown_references(data):
    ids, x, labels, _ = data
    cat = Catalog(ids, x, dimensions=DIMENSIONS, labels=labels)
    for bad, match in [({"max_per_group": 0}, "max_per_group"), ({"dedupe": 2}, "dedupe"),
                       ({"tempo_tolerance": -1}, "tempo tolerance"), ({"query_tempo": 0}, "query tempo")]:
        with pytest.raises(InputError, match=match):
            Filters(**bad)
    with pytest.raises(InputError, match="known tempo"):
        cat.search("t000", filters=Filters(tempo_tolerance=5))  # t000 has no tempo (0 % 7 == 0)
    with pytest.raises(InputError, match="known key"):
        cat.search("t000", filters=Filters(harmonic=True))
    outside = cat.search(x[0], k=5, filters=Filters(tempo_tolerance=5, query_tempo=100, harmonic=True,
                                                     query_key="A minor"))
    for h in outside:
        assert any(abs(h.labels["tempo"] - 100 * m) <= 5 * m for m in (0.5, 1, 2))
        assert key_harmonic(h.labels["key"], parse_key("A minor"))


def test_key_filter_reads_names_and_an_unknown_query_key_is_an_error(data):
    ids, x, labels, groups = data
    cat = Catalog(ids, x, dimensions=DIMENSIONS, labels=labels)
    assert Filters(key="F# minor").key == parse_key("F# minor")
    with pytest.raises(InputError, match="query of known key"):
        cat.search("t000", filters=Filters(key_compatible=True))  # t000 has no key (0 % 5 == 0)
    with pytest.raises(InputError, match="tempo range"):
        Filters(tempo_range=(120, 60))


def test_add_and_remove_without_rebuild_equal_a_fresh_build(data, rng):
    ids, x, labels, groups = data
    cat = Catalog(ids[:300], x[:300], dimensions=DIMENSIONS, labels=labels, groups=groups)
    index = cat._index
    cat.add(ids[300:], x[300:], labels=labels, groups=groups)
    gone = ids[10:40] + ["t350"]
    cat.remove(gone)
    assert cat._index is index  # flat: changed in place
    keep = [i for i, t in enumerate(ids) if t not in gone]
    fresh = Catalog([ids[i] for i in keep], x[keep], dimensions=DIMENSIONS, labels=labels, groups=groups)
    q = make_vectors(rng, 1)[0]
    f = Filters(tempo_range=(80, 170))
    got, want = (c.search(q, weights={"mood": 1, "genre": 2}, k=20, filters=f) for c in (cat, fresh))
    assert [h.track_id for h in got] == [h.track_id for h in want]
    assert [h.labels for h in got] == [h.labels for h in want]
    assert len(cat) == len(fresh) and "t350" not in cat and "t399" in cat
    with pytest.raises(InputError, match="already in the catalog"):
        cat.add(["t399"], x[:1])
    with pytest.raises(InputError, match="no track 't350'"):
        cat.remove(["t350"])


def test_save_and_load_keep_vectors_labels_and_results(data, rng, tmp_path):
    ids, x, labels, groups = data
    sources = {t: f"/music/{t}.ogg" for t in ids}
    cat = Catalog(ids, x, dimensions=DIMENSIONS, labels=labels, groups=groups, sources=sources,
                  metadata={"model": "m.keras", "model_sha256": "abc"})
    cat.save(tmp_path / "cat")
    cat.save(tmp_path / "cat")  # replacing a catalog works
    back = Catalog.load(tmp_path / "cat")
    q = make_vectors(rng, 1)[0]
    a, b = cat.search(q, k=10), back.search(q, k=10)
    assert [h.to_dict() for h in a] == [h.to_dict() for h in b]
    assert back.info("t007") == {"track_id": "t007", "labels": cat.labels("t007"), "group": groups["t007"],
                                 "source_path": "/music/t007.ogg"}
    assert back.metadata["model_sha256"] == "abc"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat"]  # no temporary folder left
    back.add(["new"], x[:1])  # a loaded flat catalog still grows
    assert back.search(x[0], k=2, filters=Filters(exclude_query=False))[1].track_id in ("new", "t000")


def test_load_refuses_what_is_not_a_catalog(tmp_path):
    with pytest.raises(StoreError, match="not a catalog"):
        Catalog.load(tmp_path)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "catalog.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(StoreError, match="not a valid catalog"):
        Catalog.load(tmp_path / "c")
    with pytest.raises(InputError, match="not a catalog folder"):
        Catalog(["a"], np.ones((1, 12)), dimensions=["mood", "tempo"]).save(tmp_path)


def clustered(rng, n, dims=DIMENSIONS, width=WIDTH, n_clusters=40):
    """Items near one of a few centres per subspace, like a trained model's embeddings."""
    centres = rng.standard_normal((len(dims), n_clusters, width))
    pick = rng.integers(0, n_clusters, size=(n, len(dims)))
    x = np.concatenate([centres[j][pick[:, j]] for j in range(len(dims))], axis=1)
    return (x + 0.3 * rng.standard_normal(x.shape)).astype(np.float32)


@pytest.mark.parametrize("weights", [None, {"mood": 1.0, "tempo": 0.5}])
def test_hnsw_recall_against_exact(rng, weights):
    n = 3000
    x = clustered(rng, n)
    ids = [str(i) for i in range(n)]
    exact = Catalog(ids, x, dimensions=DIMENSIONS)
    approx = Catalog(ids, x, dimensions=DIMENSIONS, index="hnsw")
    queries = normalised = catalog_module.normalise_blocks(clustered(rng, 50), exact.slices.values())
    _, want = exact.search_vectors(queries, weights=weights, k=10)
    _, got = approx.search_vectors(normalised, weights=weights, k=10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, want)])
    assert recall >= 0.9, recall


def test_hnsw_add_and_remove(rng):
    x = clustered(rng, 500)
    ids = [str(i) for i in range(500)]
    cat = Catalog(ids[:400], x[:400], dimensions=DIMENSIONS, index="hnsw")
    cat.add(ids[400:], x[400:])
    cat.remove(["450", "3"])
    assert len(cat) == 498 and cat._index.ntotal == 498
    hit = cat.search(x[451], k=1, filters=Filters(exclude_query=False))[0]
    assert hit.track_id == "451" and hit.score == pytest.approx(1.0, abs=ATOL)


def test_embedding_queries_match_by_dimension_name(data):
    from mdsim.api import Embedding

    ids, x, _, _ = data
    cat = Catalog(ids, x, dimensions=DIMENSIONS)
    mood, tempo = cat.slices["mood"], cat.slices["tempo"]
    v = np.concatenate([x[3, slice(*tempo)], x[3, slice(*mood)]])  # another order, two subspaces only
    emb = Embedding(v, ("tempo", "mood"), {"tempo": slice(0, WIDTH), "mood": slice(WIDTH, 2 * WIDTH)})
    hit = cat.search(emb, dims=["mood", "tempo"], k=1, filters=Filters(exclude_query=False))[0]
    assert hit.track_id == "t003" and hit.score == pytest.approx(1.0, abs=ATOL)


def test_errors_name_the_bad_value(data):
    ids, x, _, _ = data
    cat = Catalog(ids, x, dimensions=DIMENSIONS)
    with pytest.raises(InputError, match="'colour'"):
        cat.search("t001", weights={"colour": 1})
    with pytest.raises(InputError, match="non-negative"):
        cat.search("t001", weights={"mood": -1})
    with pytest.raises(InputError, match=r"shape \(5,\)"):
        cat.search(np.ones(5))
    with pytest.raises(InputError, match="no track 'nope'"):
        cat.search("nope")
    with pytest.raises(InputError, match="named subspaces"):
        Catalog(["a"], np.ones((1, 4)), dimensions=[])


def test_build_catalog_from_embeddings_with_store_or_manifest_info(tmp_path, rng):
    from mdsim.evaluation import write_embeddings

    from conftest import write_manifest

    ids = ["a", "b", "c"]
    x = make_vectors(rng, 3)
    write_embeddings(tmp_path / "e.h5", ids, x, dimensions=DIMENSIONS, metadata={"model": "m.keras"})
    rows = [{"track_id": "a", "path": "a.wav", "mood": "sad;chill", "tempo": "120", "key": "A minor",
             "group": "x"},
            {"track_id": "b", "path": "b.wav", "mood": "", "tempo": "", "key": "", "group": "y"}]
    write_manifest(tmp_path / "m.csv", rows)
    log = []
    cat = build_catalog(tmp_path / "e.h5", info=tmp_path / "m.csv",
                        log=type("L", (), {"write": lambda self, s: log.append(s), "flush": lambda self: 0})())
    assert cat.info("a")["labels"]["mood"] == ["sad", "chill"] and cat.labels("a")["key"] == parse_key("A minor")
    assert cat.info("a")["group"] == "x" and cat.info("a")["source_path"] == str((tmp_path / "a.wav").resolve())
    assert cat.labels("b")["tempo"] is None and cat.labels("c")["key"] is None
    assert "1 of 3 tracks have no entry" in "".join(log)
    assert cat.metadata["model"] == "m.keras"
    with pytest.raises(InputError, match="no such embeddings file"):
        build_catalog(tmp_path / "missing.h5")


def test_importing_search_does_not_import_faiss():
    import subprocess

    code = "import mdsim, mdsim.search, sys; print('faiss' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_model_nearest_ranks_like_similarity_through_a_catalog(rng):
    from mdsim.api import Model
    from mdsim.model import ModelConfig, subspace_slices

    m = object.__new__(Model)  # the ranking needs no network
    m.config = ModelConfig(dimensions=DIMENSIONS, embedding_size=len(DIMENSIONS) * WIDTH)
    m.dimensions, m.slices = DIMENSIONS, subspace_slices(m.config)
    x = make_vectors(rng, 50)
    items = {f"t{i}": v for i, v in enumerate(x)}
    weights = {"mood": 1.0, "tempo": 0.5, "key": 0.0}
    ranked = m.nearest(x[0], items, k=8, weights=weights)
    expected = sorted(((n, m.similarity(x[0], v, weights=weights)) for n, v in items.items()), key=lambda p: -p[1])
    assert [n for n, _ in ranked] == [n for n, _ in expected[:8]]
    np.testing.assert_allclose([s for _, s in ranked], [s for _, s in expected[:8]], atol=ATOL)
    cat = Catalog(list(items), x, dimensions=DIMENSIONS)
    assert [n for n, _ in m.nearest(x[0], cat, k=8, weights=weights)] == [n for n, _ in ranked]


# -- the commands ------------------------------------------------------------------------
def test_index_and_search_commands_agree_with_brute_force(tmp_path, rng, capsys):
    from mdsim.cli import main
    from mdsim.evaluation import write_embeddings

    from conftest import write_manifest

    ids = [f"t{i}" for i in range(60)]
    x = make_vectors(rng, 60)
    labels, groups = make_labels(rng, ids)
    write_embeddings(tmp_path / "e.h5", ids, x, dimensions=DIMENSIONS, metadata={"model": "m.keras"})
    write_manifest(tmp_path / "m.csv", [
        {"track_id": t, "path": f"{t}.wav", "mood": ";".join(labels[t]["mood"]),
         "tempo": "" if labels[t]["tempo"] is None else labels[t]["tempo"],
         "key": "" if labels[t]["key"] is None else key_name(labels[t]["key"]),
         "group": groups[t]} for t in ids])
    assert main(["index", str(tmp_path / "e.h5"), "--out", str(tmp_path / "cat"), "--info",
                 str(tmp_path / "m.csv")]) == 0
    assert "60 tracks, flat index" in capsys.readouterr().out
    assert main(["search", str(tmp_path / "cat"), "--query", "t1", "--dims", "mood=1,tempo=0.5", "-k", "5",
                 "--tempo", "80:170", "--exclude-group", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    filters = Filters(exclude_group=True, tempo_range=(80, 170))
    expected, scores = brute_filtered(x, ids, labels, groups, 1, {"mood": 1, "tempo": 0.5}, filters)
    assert [r["track_id"] for r in out["results"]] == expected[:5]
    np.testing.assert_allclose([r["score"] for r in out["results"]], scores[[ids.index(t) for t in expected[:5]]],
                               atol=ATOL)
    assert main(["search", str(tmp_path / "cat"), "--query", "t1", "--dims", "key", "-k", "3"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["rank", "track", "score", "genre"] and len(table) == 4
    assert main(["search", str(tmp_path / "cat"), "--query", "nothing-like-it"]) == 2
    assert "neither a track id of the catalog nor an audio file" in capsys.readouterr().err
    assert main(["search", str(tmp_path / "cat"), "--query", "t1", "--dims", "mood=lots"]) == 2
    assert "not a number" in capsys.readouterr().err
    assert main(["search", str(tmp_path / "cat"), "--query", "t1", "t2", "t3", "-k", "4", "--max-per-group", "1",
                 "--harmonic", "--tempo-tolerance", "20", "--dedupe", "0.5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    filters = Filters(max_per_group=1, harmonic=True, tempo_tolerance=20, dedupe=0.5)
    assert out["query"] == ["t1", "t2", "t3"]
    assert [r["track_id"] for r in out["results"]] == brute_reranked(x, ids, labels, groups, [1, 2, 3],
                                                                     {d: 1.0 for d in DIMENSIONS}, filters, 4)
    assert main(["search", str(tmp_path / "cat"), "--query", "t1", "song.wav"]) == 2
    assert "'song.wav' is not one" in capsys.readouterr().err


@pytest.mark.slow  # 18 s on an idle machine, 60 s under load: TensorFlow, prep, a tiny model
def test_index_a_store_with_a_model_and_search_by_audio(small_corpus, tmp_path, capsys):
    """The whole path: prep, index a store with a model, query with an audio file embedded on the fly."""
    from mdsim.cli import main
    from mdsim.model import ModelConfig, build_model, save_model

    model = tmp_path / "tiny.keras"
    save_model(build_model(ModelConfig(dimensions=("genre", "mood", "tempo", "key"), embedding_size=32,
                                       width=0.25)), model)
    store = tmp_path / "store.h5"
    assert main(["prep", str(small_corpus), "--out", str(store), "--workers", "1", "--quiet"]) == 0
    assert main(["index", str(store), "--model", str(model), "--out", str(tmp_path / "cat"), "--quiet"]) == 0
    capsys.readouterr()
    audio = small_corpus.parent / "t3.wav"
    assert main(["search", str(tmp_path / "cat"), "--query", str(audio), "-k", "6", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    assert results[0]["track_id"] == "t3" and results[0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert results[0]["source_path"] == str(audio.resolve()) and results[0]["group"] == "artist1"
    assert results[0]["key_name"] == "C major" and results[0]["labels"]["tempo"] == 120.0
    other = tmp_path / "other.keras"
    save_model(build_model(ModelConfig(dimensions=("genre", "mood", "tempo", "key"), embedding_size=32,
                                       width=0.25)), other)
    assert main(["search", str(tmp_path / "cat"), "--query", str(audio), "--model", str(other)]) == 2
    assert "not the model that embedded this catalog" in capsys.readouterr().err


def test_bench_search_runs_tiny():
    """experiments/bench_search.py end to end at CI size: the three exact methods agree."""
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "experiments" / "bench_search.py"
    proc = subprocess.run([sys.executable, str(script), "--sizes", "1500", "--approx-size", "1500",
                           "--queries", "10", "--batch", "5", "--ef-search", "32"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| 1,500 |")]
    assert len(rows) == 3 and all(line.rstrip().endswith("| 100% |") for line in rows), proc.stdout
    assert "recall@10" in proc.stdout
    # filtered against unfiltered queries, each tempo filter by both paths, and playlists, in the same run
    filtered = [line.split("|") for line in proc.stdout.splitlines() if line.startswith(("| none |", "| tempo "))]
    assert [cells[1].strip() for cells in filtered] == [
        "none", "tempo 100:106, mask", "tempo 100:106, tempo blocks",
        "tempo 120 ± 2.5 % (3 bands), mask", "tempo 120 ± 2.5 % (3 bands), tempo blocks"], proc.stdout
    assert all(cells[-2].strip().endswith("x") for cells in filtered[2::2]), proc.stdout  # mask / blocks
    assert "| continue_from, 20 tracks | 1,500 |" in proc.stdout and "| walk, 10 tracks | 1,500 |" in proc.stdout


def test_index_add_and_remove_equal_a_fresh_index(tmp_path, rng, capsys):
    from mdsim.cli import main
    from mdsim.evaluation import write_embeddings

    ids = [f"t{i}" for i in range(60)]
    x = make_vectors(rng, 60)
    meta = {"model": "m.keras", "model_sha256": "aaa"}
    write_embeddings(tmp_path / "first.h5", ids[:40], x[:40], dimensions=DIMENSIONS, metadata=meta)
    write_embeddings(tmp_path / "all.h5", ids, x, dimensions=DIMENSIONS, metadata=meta)
    cat = str(tmp_path / "cat")
    assert main(["index", str(tmp_path / "first.h5"), "--out", cat]) == 0
    assert main(["index", str(tmp_path / "all.h5"), "--out", cat, "--add"]) == 0
    assert "added 20, removed 0; " in capsys.readouterr().out
    assert main(["index", "--out", cat, "--remove", "t3", "t41"]) == 0
    grown = Catalog.load(cat)
    keep = [i for i in range(60) if i not in (3, 41)]
    fresh = Catalog([ids[i] for i in keep], x[keep], dimensions=DIMENSIONS)
    q = make_vectors(rng, 1)[0]
    assert [h.track_id for h in grown.search(q, k=15)] == [h.track_id for h in fresh.search(q, k=15)]
    # another model's vectors, or other subspaces, never join the catalog
    write_embeddings(tmp_path / "other.h5", ["n1"], x[:1], dimensions=DIMENSIONS,
                     metadata={"model_sha256": "bbb"})
    assert main(["index", str(tmp_path / "other.h5"), "--out", cat, "--add"]) == 2
    assert "another model" in capsys.readouterr().err
    write_embeddings(tmp_path / "narrow.h5", ["n1"], x[:1, :12], dimensions=["mood", "tempo"])
    assert main(["index", str(tmp_path / "narrow.h5"), "--out", cat, "--add"]) == 2
    assert "cannot share an index" in capsys.readouterr().err
    assert len(Catalog.load(cat)) == 58
