"""Benchmark: query by example over a catalog (mdsim.search) against brute-force baselines.

On generated 384-d vectors (6 subspaces x 64, clustered per subspace like a
trained model's embeddings; docs/search.md says how), in one run:

- exact search (the flat FAISS catalog) at each ``--sizes``: p50 / p99 of
  single queries, and queries per second in batches of ``--batch``, with
  equal weights and with ``mood=1,tempo=0.5``;
- the same queries with scikit-learn's ``NearestNeighbors(algorithm="brute")``
  (Euclidean on the block-normalised vectors: every row has norm sqrt(6), so
  the nearest is the largest inner product) and a NumPy matrix product +
  ``argpartition``, as ratios to the catalog's time, after checking that all
  three return the same neighbours;
- an approximate HNSW catalog at ``--approx-size``: build time, recall@10
  against exact (equal weights, ``mood=1,tempo=0.5``, ``key`` alone) and p50
  for several ``ef_search``;
- build time and memory (resident set growth) of each catalog;
- at each size, filtered queries: a tempo range keeping ``FILTER_SHARE`` (5 %) of the
  tracks (tempi drawn uniformly from 60 to 180 BPM) and a tempo tolerance of
  ``TOLERANCE`` % around ``QUERY_TEMPO`` (half and double tempo: three bands, about 6 %
  kept), p50 / p95 of single queries (``Catalog.search``) answered from the tempo-sorted
  rows (``Catalog.tempo_sorted``, the default) and through the index with a mask of
  the allowed rows (``tempo_sorted = False``, the earlier path), query by query in turn
  and checked to return the same tracks, against the same queries unfiltered; the
  sorted copy's build time and size; q/s of batches (``Catalog.search_vectors`` with
  the allowed rows);
- at each size, the time of a 20-track playlist from one seed (``continue_from``) and of
  a 10-track path between two tracks (``walk``), median of ``PLAYLIST_RUNS``.

Every search runs on ``--threads`` threads (default 1: the goals are per core);
the HNSW build uses every core. Times are the best of nothing: they are
percentiles over ``--queries`` queries on a shared machine.

Usage::

    python experiments/bench_search.py                                  # 10^5 and 10^6
    python experiments/bench_search.py --sizes 100000 --approx-size 100000
    python experiments/bench_search.py --sizes 2000 --approx-size 2000 --queries 20   # CI
    python experiments/bench_search.py --sizes 1000000 --approx-size 0 --filtered-only  # filters alone
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def _threads_from_argv(argv) -> str:
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
    return "1"


# BLAS and OpenMP read these when they load: set them before NumPy and FAISS are imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = _threads_from_argv(sys.argv[1:])

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from mdsim.labels import DIMENSIONS  # noqa: E402
from mdsim.search import Catalog, normalise_blocks  # noqa: E402
from mdsim.search.index import IndexSpec, set_threads  # noqa: E402

WIDTH = 64
N_CLUSTERS = 50
NOISE = 0.5
CHUNK = 100_000
WEIGHTINGS = {"equal": None, "mood=1,tempo=0.5": {"mood": 1.0, "tempo": 0.5}, "key": {"key": 1.0}}
#: Tempi of the generated tracks (BPM, uniform), and the range the filtered queries keep.
TEMPO_LOW, TEMPO_HIGH = 60.0, 180.0
FILTER_SHARE = 0.05
TEMPO_RANGE = (100.0, 100.0 + FILTER_SHARE * (TEMPO_HIGH - TEMPO_LOW))
#: A tolerance around this tempo keeps 117-123 BPM and 60-61.5 (half); double (234-246) is empty.
QUERY_TEMPO, TOLERANCE = 120.0, 2.5
PLAYLIST_RUNS = 5


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class Generator:
    """Items near one of ``N_CLUSTERS`` centres in each subspace, independently."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.centres = self.rng.standard_normal((len(DIMENSIONS), N_CLUSTERS, WIDTH)).astype(np.float32)

    def __call__(self, n: int) -> np.ndarray:
        pick = self.rng.integers(0, N_CLUSTERS, size=(n, len(DIMENSIONS)))
        x = np.concatenate([self.centres[j][pick[:, j]] for j in range(len(DIMENSIONS))], axis=1)
        x += NOISE * self.rng.standard_normal(x.shape, dtype=np.float32)
        return x


def build(n: int, gen: Generator, spec: IndexSpec) -> tuple[Catalog, float, float]:
    """A catalog of ``n`` generated items added in chunks; (catalog, seconds, MiB)."""
    before = rss_mib()
    t0 = time.perf_counter()
    cat = Catalog([], np.zeros((0, WIDTH * len(DIMENSIONS)), np.float32), dimensions=DIMENSIONS, index=spec)
    for start in range(0, n, CHUNK):
        m = min(CHUNK, n - start)
        ids = [str(i) for i in range(start, start + m)]
        tempo = gen.rng.uniform(TEMPO_LOW, TEMPO_HIGH, m)
        cat.add(ids, gen(m), labels={t: {"tempo": float(b)} for t, b in zip(ids, tempo)})
    return cat, time.perf_counter() - t0, rss_mib() - before


def percentiles(times, upper: float = 99) -> tuple[float, float]:
    ms = np.asarray(times) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, upper))


def time_single(fn, queries) -> tuple[float, float]:
    fn(queries[:1])  # warm-up
    times = []
    for i in range(len(queries)):
        t0 = time.perf_counter()
        fn(queries[i:i + 1])
        times.append(time.perf_counter() - t0)
    return percentiles(times)


def time_batches(fn, queries, batch: int) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(queries), batch):
        fn(queries[i:i + batch])
    return len(queries) / (time.perf_counter() - t0)


def bench_exact(n: int, args, gen: Generator) -> dict:
    from sklearn.neighbors import NearestNeighbors

    cat, seconds, mib = build(n, gen, IndexSpec("flat"))
    X = cat.vectors()
    queries = normalise_blocks(gen(args.queries), cat.slices.values())
    row = {"n": n, "build_s": seconds, "memory_mib": mib, "weightings": {}, "playlists": {}}
    if args.filtered_only:
        row["filtered"] = bench_filtered(cat, queries, args)
        return row, cat, queries
    nn = NearestNeighbors(n_neighbors=10, algorithm="brute", metric="euclidean", n_jobs=1).fit(X)

    def numpy_top(q):
        s = q @ X.T
        top = np.argpartition(-s, 10, axis=1)[:, :10]
        return np.take_along_axis(top, np.argsort(-np.take_along_axis(s, top, 1), axis=1), 1)

    for name, weights in WEIGHTINGS.items():
        scaled = cat.scale(queries, cat.weights(weights=weights))
        ours = lambda q, w=weights: cat.search_vectors(q, weights=w, k=10)  # noqa: E731
        got = ours(queries)[1]
        agree = np.mean([set(a) == set(b) == set(c) for a, b, c in
                         zip(got, nn.kneighbors(scaled, return_distance=False), numpy_top(scaled))])
        entry = {"agree": float(agree)}
        entry["p50"], entry["p99"] = time_single(ours, queries)
        entry["qps"] = time_batches(ours, queries, args.batch)
        entry["api_p50"], _ = time_single(lambda q: cat.search(q[0], weights=weights, k=10), queries)
        entry["sklearn_p50"], _ = time_single(lambda q: nn.kneighbors(cat.scale(q, cat.weights(weights=weights)),
                                                                       return_distance=False), queries)
        entry["sklearn_qps"] = time_batches(lambda q: nn.kneighbors(cat.scale(q, cat.weights(weights=weights)),
                                                                    return_distance=False), queries, args.batch)
        entry["numpy_p50"], _ = time_single(lambda q: numpy_top(cat.scale(q, cat.weights(weights=weights))), queries)
        entry["numpy_qps"] = time_batches(lambda q: numpy_top(cat.scale(q, cat.weights(weights=weights))),
                                          queries, args.batch)
        row["weightings"][name] = entry
    row["filtered"] = bench_filtered(cat, queries, args)
    row["playlists"] = bench_playlists(cat)
    return row, cat, queries


def time_in_turn(fns: dict, queries) -> dict:
    """``{name: seconds per query}``, the functions timed one after another on each query
    (which goes first alternating), so that load from other work falls on all alike."""
    names = list(fns)
    for fn in fns.values():
        fn(queries[:1])  # warm-up
    times = {name: [] for name in names}
    for i in range(len(queries)):
        for name in (names if i % 2 == 0 else names[::-1]):
            t0 = time.perf_counter()
            fns[name](queries[i:i + 1])
            times[name].append(time.perf_counter() - t0)
    return times


def bench_filtered(cat: Catalog, queries, args) -> dict:
    """``Catalog.search`` with a tempo range (``TEMPO_RANGE``) and a tempo tolerance, from
    the tempo-sorted rows and through the index with a mask, and with no filter; one run."""
    from mdsim.search import Filters

    before, t0 = rss_mib(), time.perf_counter()
    order = cat.tempo_order()
    out = {"order_s": time.perf_counter() - t0, "order_mib": rss_mib() - before, "order_bytes": order.nbytes}
    filters = {f"tempo {TEMPO_RANGE[0]:g}:{TEMPO_RANGE[1]:g}": Filters(tempo_range=TEMPO_RANGE),
               f"tempo {QUERY_TEMPO:g} ± {TOLERANCE:g} % (3 bands)":
                   Filters(tempo_tolerance=TOLERANCE, query_tempo=QUERY_TEMPO)}

    def one(f, sorted_rows):
        def run(q):
            cat.tempo_sorted = sorted_rows
            return cat.search(q[0], k=10, filters=f)
        return run

    for name, f in filters.items():
        old, new = one(f, False)(queries[:5]), one(f, True)(queries[:5])
        assert [h.track_id for h in old] == [h.track_id for h in new], name
    fns = {"none": one(None, True)}
    for name, f in filters.items():
        fns[f"{name}, mask"] = one(f, False)
        fns[f"{name}, tempo blocks"] = one(f, True)
    cat.tempo_sorted = True
    out["single"] = {name: percentiles(t, 95) for name, t in time_in_turn(fns, queries).items()}
    out["share"] = {"none": 1.0, **{f"{name}, {how}": float(np.mean(cat.allowed(f)))
                                    for name, f in filters.items() for how in ("mask", "tempo blocks")}}
    kept = filters[f"tempo {TEMPO_RANGE[0]:g}:{TEMPO_RANGE[1]:g}"]
    out["qps"] = {"none": time_batches(lambda q: cat.search_vectors(q, k=10), queries, args.batch),
                  "tempo range, mask": time_batches(lambda q: cat.search_vectors(q, k=10, allowed=cat.allowed(kept)),
                                                    queries, args.batch)}
    hits = cat.search(queries[0], k=10, filters=kept)
    assert all(TEMPO_RANGE[0] <= h.labels["tempo"] <= TEMPO_RANGE[1] for h in hits)
    return out


def bench_playlists(cat: Catalog) -> dict:
    """Median seconds of a 20-track ``continue_from`` and a 10-track ``walk``."""
    from mdsim.search import continue_from, walk

    ids = cat.track_ids
    runs = {"continue_from, 20 tracks": lambda i: continue_from(cat, [ids[i]], n=20),
            "walk, 10 tracks": lambda i: walk(cat, ids[i], ids[-1 - i], n=10)}
    out = {}
    for name, fn in runs.items():
        times = []
        for i in range(PLAYLIST_RUNS):
            t0 = time.perf_counter()
            fn(i)
            times.append(time.perf_counter() - t0)
        out[name] = float(np.median(times))
    return out


def bench_approx(n: int, args, gen: Generator, exact: Catalog, queries) -> dict:
    set_threads(os.cpu_count() or 1)
    spec = IndexSpec("hnsw", hnsw_m=args.hnsw_m, ef_construction=args.ef_construction)
    cat, seconds, mib = build(n, gen, spec)
    set_threads(args.threads)
    row = {"n": n, "build_s": seconds, "memory_mib": mib, "m": args.hnsw_m,
           "ef_construction": args.ef_construction, "runs": []}
    for ef in args.ef_search:
        cat.spec = IndexSpec("hnsw", hnsw_m=args.hnsw_m, ef_construction=args.ef_construction, ef_search=ef)
        for name, weights in WEIGHTINGS.items():
            want = exact.search_vectors(queries, weights=weights, k=10)[1]
            got = cat.search_vectors(queries, weights=weights, k=10)[1]
            recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, want)]))
            p50, p99 = time_single(lambda q, w=weights: cat.search_vectors(q, weights=w, k=10), queries)
            row["runs"].append({"ef_search": ef, "weights": name, "recall10": recall, "p50": p50, "p99": p99})
    return row


def exact_markdown(exact_rows, args) -> str:
    out = [f"Generated {len(DIMENSIONS)} x {WIDTH} = {len(DIMENSIONS) * WIDTH}-d vectors, {args.queries} "
           f"queries, k = 10, {args.threads} thread(s) per search, batches of {args.batch}.", "",
           "| items | weights | exact p50 / p99 (ms) | API p50 (ms) | exact q/s (batched) | sklearn brute p50 | "
           "NumPy argpartition p50 | sklearn / exact (p50, q/s) | NumPy / exact (p50, q/s) | same top 10 |",
           "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    if not any(r["weightings"] for r in exact_rows):  # --filtered-only
        out = out[:2]
    for r in exact_rows:
        for name, e in r["weightings"].items():
            out.append(f"| {r['n']:,} | {name} | {e['p50']:.2f} / {e['p99']:.2f} | {e['api_p50']:.2f} | "
                       f"{e['qps']:,.0f} | {e['sklearn_p50']:.2f} | {e['numpy_p50']:.2f} | "
                       f"{e['sklearn_p50'] / e['p50']:.1f}x, {e['qps'] / e['sklearn_qps']:.1f}x | "
                       f"{e['numpy_p50'] / e['p50']:.1f}x, {e['qps'] / e['numpy_qps']:.1f}x | {e['agree']:.0%} |")
    out += ["", f"Single queries (Catalog.search, p50 / p95), the tempo filters answered from the tempo-sorted "
            f"rows and through the index with a mask, in turn query by query (tempi uniform in "
            f"{TEMPO_LOW:g}-{TEMPO_HIGH:g}):", "",
            "| filter | items | tracks kept | p50 / p95 (ms) | p50 / unfiltered p50 | mask p50 / blocks p50 |",
            "|---|---:|---:|---:|---:|---:|"]
    for r in exact_rows:
        f = r["filtered"]
        base = f["single"]["none"][0]
        for name, (p50, p95) in f["single"].items():
            ratio = ""
            if name.endswith("tempo blocks"):
                ratio = f"{f['single'][name.replace('tempo blocks', 'mask')][0] / p50:.1f}x"
            out.append(f"| {name} | {r['n']:,} | {f['share'][name]:.1%} | {p50:.2f} / {p95:.2f} | "
                       f"{p50 / base:.2f} | {ratio} |")
    out += ["", "| catalog | items | tempo order: build (s) | size (MiB) | resident growth (MiB) | "
            f"q/s unfiltered (batches of {args.batch}) | q/s tempo range (mask) |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for r in exact_rows:
        f = r["filtered"]
        out.append(f"| flat | {r['n']:,} | {f['order_s']:.2f} | {f['order_bytes'] / 2**20:,.0f} | "
                   f"{f['order_mib']:,.0f} | {f['qps']['none']:,.0f} | {f['qps']['tempo range, mask']:,.0f} |")
    if not any(r["playlists"] for r in exact_rows):  # --filtered-only
        return "\n".join(out)
    out += ["", f"Playlists (median of {PLAYLIST_RUNS}, equal weights, no filter):", "",
            "| playlist | items | time (ms) |", "|---|---:|---:|"]
    for r in exact_rows:
        for name, seconds in r["playlists"].items():
            out.append(f"| {name} | {r['n']:,} | {seconds * 1000:.1f} |")
    out += ["", "| catalog | items | build (s) | memory (MiB) |", "|---|---:|---:|---:|"]
    for r in exact_rows:
        out.append(f"| flat | {r['n']:,} | {r['build_s']:.1f} | {r['memory_mib']:,.0f} |")
    return "\n".join(out)


def approx_markdown(a) -> str:
    out = [f"HNSW M={a['m']}, efConstruction={a['ef_construction']}, {a['n']:,} items: built in "
           f"{a['build_s']:.1f} s on {os.cpu_count()} threads, {a['memory_mib']:,.0f} MiB; against exact:", "",
           "| ef_search | weights | recall@10 | p50 / p99 (ms) |", "|---:|---|---:|---:|"]
    for run in a["runs"]:
        out.append(f"| {run['ef_search']} | {run['weights']} | {run['recall10']:.3f} | "
                   f"{run['p50']:.2f} / {run['p99']:.2f} |")
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000], help="exact catalog sizes")
    p.add_argument("--approx-size", type=int, default=1_000_000, help="HNSW catalog size (0: skip)")
    p.add_argument("--queries", type=int, default=200, help="queries per measurement")
    p.add_argument("--batch", type=int, default=100, help="queries per batch for q/s")
    p.add_argument("--threads", type=int, default=1, help="threads per search (BLAS, OpenMP)")
    p.add_argument("--hnsw-m", type=int, default=32, help="HNSW graph degree")
    p.add_argument("--ef-construction", type=int, default=80, help="HNSW build candidates")
    p.add_argument("--ef-search", type=int, nargs="+", default=[32, 64, 128], help="HNSW search candidates")
    p.add_argument("--seed", type=int, default=0, help="generator seed")
    p.add_argument("--filtered-only", action="store_true",
                   help="time the filtered queries alone (no baselines, playlists or HNSW)")
    args = p.parse_args(argv)
    set_threads(args.threads)
    rows, exact = [], None
    for n in args.sizes:
        row, cat, queries = bench_exact(n, args, Generator(args.seed))
        rows.append(row)
        print(f"bench_search: exact {n:,} done", file=sys.stderr, flush=True)
        if n == args.approx_size:
            exact = (cat, queries)
        else:
            del cat
    print(exact_markdown(rows, args), flush=True)  # the exact figures survive a killed HNSW build
    approx = None
    if args.approx_size:
        if exact is None:
            gen = Generator(args.seed)
            exact = (build(args.approx_size, gen, IndexSpec("flat"))[0], None)
            exact = (exact[0], normalise_blocks(gen(args.queries), exact[0].slices.values()))
        approx = bench_approx(args.approx_size, args, Generator(args.seed), *exact)
    if approx:
        print("\n" + approx_markdown(approx))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
