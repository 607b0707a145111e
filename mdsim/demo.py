"""``make demo``: the whole pipeline on data made or bundled in the repository.

1. generate a small labelled synthetic corpus (``mdsim.synth``),
2. ``mdsim prep`` it together with the eight bundled recordings (madmom
   estimates tempo and key for those),
3. the default model, with no training: each bundled recording's nearest
   others by tempo, by key, by instrument and by sound (``docs/default_model.md``),
4. ``mdsim train`` a small multi-input model briefly,
5. ``mdsim triplets`` per dimension on the held-out tracks and ``mdsim evaluate``
   (table and radar chart),
6. print, for each bundled recording, its nearest synthetic neighbours by mood
   and by tempo,
7. ``mdsim index`` the store, one ``mdsim search``, and the ``mdsim serve``
   command that browses the catalog.

Run from the repository root as ``python -m mdsim.demo --out demo_out``; it
takes a few minutes on two cores and resumes where it stopped.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from mdsim import synth
from mdsim.cli import main as mdsim_main
from mdsim.data import AUDIO_DIR as BUNDLED_AUDIO

DEMO_DIMS = ("genre", "mood", "instrument", "era", "tempo", "key")


def _step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def _run(argv) -> None:
    print("$ mdsim " + " ".join(str(a) for a in argv), flush=True)
    status = mdsim_main([str(a) for a in argv])
    if status:
        raise SystemExit(status)


def run(out: Path, *, n_tracks: int = 72, epochs: int = 6, workers: int | None = None) -> int:
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)

    corpus = out / "synth"
    manifest = corpus / "manifest.csv"
    _step(f"1/7 generate {n_tracks} labelled synthetic tracks -> {corpus}")
    if not manifest.exists():
        synth.generate_corpus(corpus, n_tracks, seed=0, duration_range=(8.0, 12.0))
    else:
        print(f"(already there: {manifest})")

    store = out / "store.h5"
    _step("2/7 mdsim prep: synthetic corpus (labels from the manifest) and the bundled recordings (madmom)")
    extra = ["--workers", str(workers)] if workers else []
    _run(["prep", manifest, "--out", store, *extra])
    _run(["prep", BUNDLED_AUDIO, "--out", store, "--tempo-mode", "fast", *extra])

    _step("3/7 the default model, no training: each bundled recording's nearest others by tempo, key, "
          "instrument and sound")
    _default_neighbours(store)

    run_dir = out / "run"
    _step(f"4/7 mdsim train: multi-input, 6 x 16-d subspaces, {epochs} short epochs")
    train_args = ["train", store, "--epochs", epochs, "--steps-per-epoch", 12, "--batch-size", 32,
                  "--width", 0.5, "--embedding-size", 96, "--learning-rate", 1e-3,
                  "--validation-fraction", 0.25]
    if (run_dir / "state.json").exists():
        _run(["train", store, "--resume", run_dir, "--epochs", epochs])
    else:
        _run(train_args[:2] + ["--out", run_dir] + train_args[2:])
    model_path = run_dir / "best.keras"

    _step("5/7 mdsim triplets + mdsim evaluate on held-out tracks, per dimension")
    import csv

    combined = out / "triplets_heldout.csv"
    rows, header = [], None
    for dim in DEMO_DIMS:
        path = out / f"triplets_{dim}.csv"
        _run(["triplets", store, "--dimension", dim, "--n", 30, "--tracks", run_dir / "split.json",
              "--seed", 1, "--out", path])
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader)
            rows += [[f"{dim}-{r[0]}"] + r[1:] for r in reader]
    with open(combined, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    _run(["evaluate", "--triplets", combined, "--model", model_path, "--store", store,
          "--out", out / "report", "--bootstrap", 200, "--top", 10])
    print((out / "report" / "evaluation.md").read_text())

    _step("6/7 nearest synthetic neighbours of each bundled recording, by mood and by tempo")
    _neighbours(model_path, store)

    _step("7/7 mdsim index + mdsim search: a catalog of the store, one query by example")
    catalog = out / "catalog"
    _run(["index", store, "--model", model_path, "--out", catalog, "--quiet"])
    _run(["search", catalog, "--query", "trumpet", "--dims", "mood=1,tempo=0.5", "-k", 5])
    print(f"\nbrowse, listen and steer the search:\n  mdsim serve {catalog} --audio-root {corpus} "
          f"--audio-root {BUNDLED_AUDIO}\n  then open http://127.0.0.1:8000/")
    print(f"\ndemo: done in {time.perf_counter() - t0:.0f} s; everything is in {out}/ "
          f"(report: {out / 'report'})")
    return 0


def _neighbours(model_path, store_path) -> None:
    import mdsim
    from mdsim.embed import store_embedding_set
    from mdsim.features.store import FeatureStore

    model = mdsim.load_model(model_path)
    emb = store_embedding_set(model, store_path, progress=False)
    vectors = dict(zip(emb.track_ids, emb.embeddings))
    with FeatureStore(store_path) as store:
        attrs = {t: store.attrs(t) for t in store.track_ids()}
    bundled = sorted(t for t in vectors if not t.startswith("synth"))
    catalog = {t: v for t, v in vectors.items() if t.startswith("synth")}
    for tid in bundled:
        a = attrs[tid]
        print(f"\n{tid} (madmom: {a['tempo']:.0f} BPM, {a['key'] or 'no key'})")
        for dim in ("mood", "tempo"):
            near = model.nearest(vectors[tid], catalog, k=3, dims=[dim])
            desc = ", ".join(f"{n} [{attrs[n]['mood'] if dim == 'mood' else format(attrs[n]['tempo'], '.0f') + ' BPM'}]"
                             f" {s:.2f}" for n, s in near)
            print(f"  by {dim:<5}: {desc}")


def _default_neighbours(store_path) -> None:
    """The bundled recordings embedded by the default model, and each one's two nearest others
    in each of its subspaces, beside madmom's tempo and key of every track."""
    import mdsim
    from mdsim.embed import store_embedding_set
    from mdsim.features.store import FeatureStore
    from mdsim.models import describe

    model = mdsim.load_model()
    print(f"model: {describe(model)}")
    with FeatureStore(store_path) as store:
        bundled = sorted(t for t in store.track_ids() if not t.startswith("synth"))
        attrs = {t: store.attrs(t) for t in bundled}
    emb = store_embedding_set(model, store_path, bundled, progress=False)
    vectors = dict(zip(emb.track_ids, emb.embeddings))

    def label(t):
        a = attrs[t]
        return f"{t} ({a['tempo']:.0f} BPM, {a['key'] or 'no key'})"

    for tid in bundled:
        print(f"\n{label(tid)}")
        others = {t: v for t, v in vectors.items() if t != tid}
        for dim in model.dimensions:
            near = model.nearest(vectors[tid], others, k=2, dims=[dim])
            print(f"  by {dim:<10}: " + ", ".join(f"{label(n)} {s:.2f}" for n, s in near))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m mdsim.demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="folder for everything the demo writes")
    p.add_argument("--tracks", type=int, default=72, help="synthetic tracks to generate (default 72)")
    p.add_argument("--epochs", type=int, default=6, help="training epochs (default 6)")
    p.add_argument("--workers", type=int, default=None, help="worker processes for prep")
    args = p.parse_args(argv)
    return run(args.out, n_tracks=args.tracks, epochs=args.epochs, workers=args.workers)


if __name__ == "__main__":
    sys.exit(main())
