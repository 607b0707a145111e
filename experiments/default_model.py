"""The default model, from nothing: render its corpus, prep, train, score, and ship it.

The recipe of ``docs/default_model.md``, every step resumable (run the same command again
after a kill):

1. **render** the training corpus: generated scores (``mdsim/recipes/rendered.py``, ``--palette
   gm``: a lead from ten General MIDI programme families, an accompaniment, a bass, drums in
   half the scores, a room per score), each played in ``--keys`` tonics through one of the
   training soundfonts (FluidR3_GM and MuseScore_General, both MIT); and a test corpus of other
   scores (seed 1) through a soundfont held out of training (TimGM6mb, measured only);
2. **prep** both with the exact labels (``mdsim prep --annotate none``, the default feature settings,
   so the model embeds any store a user preps);
3. **train** ``--config default_model`` (instrument, tempo and key, 16 dimensions each);
4. **score** on the test corpus: ``--triplets`` triplets per dimension drawn by ``mdsim
   triplets``, each scored in the model's own subspace (track mode) beside its one-line
   baseline on the same triplets (the key profile of the mean CENS, the tempogram's strongest
   lag on the tempo-octave circle, the standardised mean of 20 MFCCs), with 95 % bootstrap
   intervals and the paired difference (both resampled together);
5. **real recordings**: the bundled recordings prepped with madmom's key and tempo (the
   reference where a set has no labels), and every ``--real-store NAME=STORE`` (a store of real
   recordings with annotated tempo and/or key, prepped with ``--annotate none``), scored the
   same way against the same baselines in the dimensions each set labels;
6. **speed**: seconds of audio embedded per second on one core (``taskset -c 0``, one thread
   each for TensorFlow and BLAS), end to end from the audio file, over every file of the test
   corpus after a first one; what the process paid once before (the model's load, the first
   file with the network's first trace) is reported beside it;
7. ``--ship``: copy ``best.keras`` to ``mdsim/models/default.keras`` (refused over 10 MB) and
   the figures, the table and the training log to ``docs/default_model/``.

    python experiments/default_model.py --out runs/default                 # the recipe
    python experiments/default_model.py --out runs/default --ship          # ... and ship its model
    python experiments/default_model.py --out /tmp/dm --tiny               # a few tracks, a few steps (CI)

``--tiny`` renders 6 training and 3 test scores in 6 keys, 6 s each, trains 2 epochs of 3 batches and skips
the speed and real-recording steps: it checks that the recipe runs end to end, not what it learns.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

TRAIN_SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf3/MuseScore_General_Lite.sf3")
TEST_SOUNDFONT = "/usr/share/sounds/sf2/TimGM6mb.sf2"
DIMENSIONS = ("instrument", "tempo", "key")
BASELINE_OF = {"key": "key profile", "tempo": "tempogram peak", "instrument": "MFCC mean", "sound": "MFCC mean"}
#: The largest model file the wheel takes.
MAX_MODEL_BYTES = 10 * 1024 * 1024
SHIPPED_MODEL = ROOT / "mdsim" / "models" / "default.keras"
SHIPPED_DOCS = ROOT / "docs" / "default_model"


def _mdsim(*args) -> None:
    print("$ mdsim " + " ".join(map(str, args)), flush=True)
    subprocess.run([sys.executable, "-m", "mdsim.cli", *map(str, args)], check=True)


def _step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def render(out: Path, *, scores: int, keys: int, seconds: float, seed: int, soundfonts, jobs: int,
           with_mastering: bool = False) -> Path:
    from tqdm import tqdm

    from mdsim.recipes.rendered import generate_corpus

    return generate_corpus(out, scores=scores, keys=keys, seconds=seconds, seed=seed, palette="gm",
                           soundfonts=tuple(soundfonts), jobs=jobs, with_mastering=with_mastering,
                           progress=lambda rows: tqdm(rows, desc=f"render {out.name}", unit="track"))


def prep(manifest: Path, store: Path, *, annotate: str = "none") -> None:
    # mdsim prep's own feature settings, so that the model embeds any store a user preps
    _mdsim("prep", manifest, "--out", store, "--annotate", annotate, "--quiet")


def train(store: Path, run: Path, *, epochs: int, steps: int, config: str) -> None:
    state = run / "state.json"
    if state.exists():
        if json.loads(state.read_text())["epochs_done"] >= epochs:
            print(f"(trained: {run})")
            return
        _mdsim("train", store, "--resume", run, "--epochs", epochs, "--quiet")
    else:
        _mdsim("train", store, "--config", config, "--out", run, "--epochs", epochs, "--steps-per-epoch", steps,
               "--quiet")


def _mfcc(mel) -> np.ndarray:
    """The first 20 MFCCs of each frame: the DCT-II of the log-mel frames (20 x frames)."""
    from scipy.fft import dct

    return dct(mel.astype(np.float64), type=2, norm="ortho", axis=0)[:20]


def _mfcc_set(ids, rows):
    """The MFCC-mean baseline's embedding set: ``rows`` standardised over the set."""
    from mdsim.evaluation import EmbeddingSet

    x = np.array(rows)
    x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-9)
    return EmbeddingSet(np.array(ids), x.astype(np.float32), name="MFCC mean")


def mfcc_mean_embedding(store_path, track_ids=None):
    """The standardised mean of the first 20 MFCCs of each track."""
    from mdsim.features.store import FeatureStore

    with FeatureStore(store_path) as store:
        ids = list(track_ids) if track_ids is not None else store.track_ids()
        rows = [_mfcc(store.features(t, names=("mel",))["mel"]).mean(axis=1) for t in ids]
    return _mfcc_set(ids, rows)


def baselines(store_path) -> dict:
    from key_tempo_baselines import baseline_embeddings

    emb = baseline_embeddings(store_path)
    return {"key profile": emb["key profile"], "tempogram peak": emb["tempo (tempogram peak)"],
            "MFCC mean": mfcc_mean_embedding(store_path)}


def _distinct_triplets(ids, positives, negatives, n: int, seed: int = 0):
    """Up to ``n`` distinct (anchor, positive, negative) of ``ids``: ``positives(i)`` and
    ``negatives(i)`` are the indices that may be anchor ``i``'s positive and negative."""
    from mdsim.evaluation.triplets import Triplets

    rng, seen = np.random.default_rng(seed), set()
    for _ in range(50 * n):
        if len(seen) == n:
            break
        a = int(rng.integers(len(ids)))
        same, other = positives(a), negatives(a)
        if len(same) and len(other):
            seen.add((a, int(rng.choice(same)), int(rng.choice(other))))
    rows = sorted(seen)
    return Triplets(*(np.array([ids[r[k]] for r in rows], dtype=str) for k in range(3)))


def sound_triplets_by_score(track_ids, n: int):
    """The sound subspace's triplets on a rendered corpus (ids ``SCORE_TONIC_MODE``): the anchor
    and the positive are one score played in two tonics (one arrangement, soundfont and room, in
    two keys), the negative another score."""
    ids = list(track_ids)
    score = np.array([t.split("_", 1)[0] for t in ids])
    index = np.arange(len(ids))
    return _distinct_triplets(ids, lambda a: index[(score == score[a]) & (index != a)],
                              lambda a: index[score != score[a]], n)


def halves(model, store_path):
    """The model's and the MFCC mean's embeddings of each half of every track of at least two
    windows (ids ``TRACK#1``, ``TRACK#2``: the mean over the 3 s windows of each half)."""
    from mdsim.evaluation import EmbeddingSet
    from mdsim.features.store import FeatureStore

    ids, model_rows, mfcc_rows = [], [], []
    with FeatureStore(store_path) as store:
        for t in store.track_ids():
            feats = store.features(t, names=tuple(dict.fromkeys(model.config.inputs + ("mel",))))
            segments = model.embed_features([{k: feats[k] for k in model.config.inputs}], mode="segments")[0]
            if len(segments.vectors) < 2:
                continue
            cut, frames = len(segments.vectors) // 2, feats["mel"].shape[1] // 2
            mfcc = _mfcc(feats["mel"])
            for half, (v, m) in enumerate(((segments.vectors[:cut], mfcc[:, :frames]),
                                           (segments.vectors[cut:], mfcc[:, frames:])), 1):
                ids.append(f"{t}#{half}")
                model_rows.append(v.mean(axis=0))
                mfcc_rows.append(m.mean(axis=1))
    slices = [(model.slices[d].start, model.slices[d].stop) for d in model.dimensions]
    return (EmbeddingSet(np.array(ids), np.array(model_rows, np.float32), dimensions=model.dimensions,
                         slices=slices, name="default"),
            _mfcc_set(ids, mfcc_rows))


def sound_triplets_by_halves(track_ids, n: int):
    """The sound subspace's triplets on real recordings, which need no label: the anchor is the
    first half of a recording, the positive its second half, the negative another recording's
    second half."""
    ids = list(track_ids)
    track = np.array([t.rsplit("#", 1)[0] for t in ids])
    second = np.array([t.endswith("#2") for t in ids])
    index = np.arange(len(ids))
    return _distinct_triplets(ids, lambda a: index[(track == track[a]) & second] if not second[a] else index[:0],
                              lambda a: index[(track != track[a]) & second], n)


def score_set(store: Path, triplet_dir: Path, model_path: Path, *, dims, n: int, bootstrap: int,
              sound: str | None = None) -> dict:
    """Each dimension's triplets: the model in its own subspace, its baseline, and the paired difference.

    ``sound`` (a model with the self-supervised subspace): ``"score"`` scores it on one score in
    two keys against another score (:func:`sound_triplets_by_score`), ``"halves"`` on the two
    halves of a recording against another recording (:func:`sound_triplets_by_halves`).
    """
    from mdsim import load_model
    from mdsim.embed import store_embedding_set
    from mdsim.evaluation import (bootstrap_ci, check_layout, combination_correct, evaluate, load_triplets,
                                  validate)
    from mdsim.evaluation.embeddings import gather

    model = load_model(model_path)
    emb = store_embedding_set(model, store, progress=False, name="default")
    base = baselines(store)
    out, n_tracks = {}, int(len(emb.track_ids))
    if sound and "sound" in model.dimensions:
        dims = (*dims, "sound")
    for dim in dims:
        ours, theirs_set = emb, base[BASELINE_OF[dim]]  # the sets this dimension's triplets name
        if dim == "sound":
            if sound == "halves":  # the triplets name halves of recordings: embed those
                ours, theirs_set = halves(model, store)
                triplets = sound_triplets_by_halves(ours.track_ids, n)
            else:
                triplets = sound_triplets_by_score(emb.track_ids, n)
            description = ("one score in two keys against another score" if sound == "score" else
                           "the two halves of a recording against another recording")
        else:
            path = triplet_dir / f"{dim}.csv"
            if not path.exists():
                try:
                    _mdsim("triplets", store, "--dimension", dim, "--n", n, "--at-most", "--out", path)
                except subprocess.CalledProcessError:  # no track of this set has a similar and a dissimilar one
                    continue
            triplets = load_triplets(path, min_agreement=0.0)
            description = None

        def correct(e, subspace=None):
            kept, _ = validate(triplets, e)
            a, p, q = (gather(e, ids) for ids in (kept.anchor, kept.positive, kept.negative))
            names, slices = check_layout(e.dimensions, e.slices, a.shape[1])
            every = [slices[names.index(subspace)]] if subspace else (slices or ((0, a.shape[1]),))
            return combination_correct(a, p, q, every, np.ones((1, len(every))))[:, 0].astype(np.float64)

        def interval(values):
            low, high = bootstrap_ci(values[:, None], n_resamples=bootstrap)
            return [round(float(values.mean()), 4), round(float(low[0]), 4), round(float(high[0]), 4)]

        if not len(triplets.anchor):
            continue
        mine, theirs = correct(ours, dim), correct(theirs_set)
        distinct = len({tuple(r) for r in zip(triplets.anchor, triplets.positive, triplets.negative)})
        out[dim] = {"triplets": int(len(mine)), "distinct": distinct, "tracks": n_tracks,
                    "model": interval(mine), "baseline": BASELINE_OF[dim], "baseline score": interval(theirs),
                    "model minus baseline": interval(mine - theirs)}
        if description:
            out[dim]["triplets are"] = description
        r = evaluate(triplets, ours, n_bootstrap=bootstrap)
        out[dim]["whole embedding"] = [round(r["full"][k], 4) for k in ("score", "ci_low", "ci_high")]
    return out


SPEED_SCRIPT = r"""
import json, sys, time
import soundfile as sf
import mdsim
t = time.perf_counter()
model = mdsim.load_model(sys.argv[1])
files = sys.argv[2:]
model.embed(files[0])  # what a process pays once: the model's load, the network's first trace
start = time.perf_counter() - t
audio = sum(sf.info(f).duration for f in files[1:])
walls = []
for _ in range(2):  # the first pass meets each new batch shape once; the second is the steady state
    wall = 0.0
    for f in files[1:]:
        t = time.perf_counter()
        model.embed(f)
        wall += time.perf_counter() - t
    walls.append(wall)
print(json.dumps({"start_s": start, "files": len(files) - 1, "audio_s": audio,
                  "wall_s": walls[0], "times_real_time": audio / walls[0],
                  "steady_wall_s": walls[1], "steady_times_real_time": audio / walls[1]}))
"""


def speed(model_path: Path, files) -> dict:
    """Seconds of audio embedded per second of one core, end to end from the file."""
    env = dict(os.environ, TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1", OMP_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", TF_CPP_MIN_LOG_LEVEL="3")
    cmd = [sys.executable, "-c", SPEED_SCRIPT, str(model_path), *map(str, files)]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


def table(results: dict) -> str:
    lines = []
    sets = [("Held-out scores, held-out soundfont (rendered)", results.get("rendered"))]
    sets += [(f"Real recordings: {name} ({r.pop('about', '')})", r) for name, r in
             ((n, dict(v)) for n, v in results.get("real", {}).items())]
    for title, scores in sets:
        if not scores:
            continue
        lines += [f"### {title}", "", "| dimension | tracks | triplets (distinct) | model, own subspace | baseline | "
                  "baseline's score | model minus baseline (paired) |", "|---|---:|---:|---:|---|---:|---:|"]
        notes = [f"{dim}: {r['triplets are']}" for dim, r in scores.items() if "triplets are" in r]
        for dim, r in scores.items():
            m, b, d = r["model"], r["baseline score"], r["model minus baseline"]
            lines.append(f"| {dim} | {r['tracks']} | {r['triplets']} ({r['distinct']}) | {m[0]:.3f} [{m[1]:.3f}, "
                         f"{m[2]:.3f}] | {r['baseline']} | {b[0]:.3f} [{b[1]:.3f}, {b[2]:.3f}] | {d[0]:+.3f} "
                         f"[{d[1]:+.3f}, {d[2]:+.3f}] |")
        lines += ["", *(f"Triplets of {note}." for note in notes), *([""] if notes else [])]
    if "speed" in results:
        s = results["speed"]
        steady = (f"; {s['steady_times_real_time']:.0f}x on a second pass over the same files, when every batch "
                  f"shape has been traced ({s['steady_wall_s']:.1f} s)") if "steady_wall_s" in s else ""
        start = (f" Before its first file a process pays {s['start_s']:.1f} s once: the model's load and the "
                 "network's first trace.") if "start_s" in s else ""
        lines += [f"Speed: {s['times_real_time']:.0f}x real time on one core ({s['audio_s']:.0f} s of audio in "
                  f"{s['wall_s']:.1f} s, {s['files']} files, end to end from the file, any new batch shape traced on "
                  f"the way{steady}).{start} Model file: {results['model bytes'] / 1e6:.2f} MB.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="work folder (corpora, stores, run, figures)")
    p.add_argument("--scores", type=int, default=300, help="training scores (default 300)")
    p.add_argument("--keys", type=int, default=4, help="tonics each score is played in (default 4)")
    p.add_argument("--seconds", type=float, default=20.0, help="length of a track (default 20)")
    p.add_argument("--test-scores", type=int, default=40, help="test scores (default 40)")
    p.add_argument("--soundfont", action="append", help=f"training soundfont, repeatable (default: "
                   f"{', '.join(TRAIN_SOUNDFONTS)})")
    p.add_argument("--test-soundfont", default=TEST_SOUNDFONT, help=f"held-out soundfont (default {TEST_SOUNDFONT})")
    p.add_argument("--epochs", type=int, default=120)
    p.add_argument("--steps", type=int, default=20, help="batches per epoch (default 20)")
    p.add_argument("--config", default="default_model", help="mdsim train --config (default default_model)")
    p.add_argument("--triplets", type=int, default=1000, help="triplets per dimension (default 1000)")
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--jobs", type=int, default=2, help="FluidSynth processes at once (default 2)")
    p.add_argument("--mastering", action="store_true",
                   help="every score of both corpora through a mastering chain of its own (python -m "
                        "mdsim.recipes.rendered --mastering; not in the shipped model's corpus)")
    p.add_argument("--real", type=Path, help="folder of real recordings to measure on, labelled by madmom "
                   "(default: the bundled ones)")
    p.add_argument("--real-store", action="append", default=[], metavar="NAME=STORE",
                   help="a store of real recordings with annotated tempo and/or key (mdsim prep --annotate none), "
                        "measured on too; repeatable")
    p.add_argument("--tiny", action="store_true", help="a few tracks and steps: the recipe end to end, not a model")
    p.add_argument("--ship", action="store_true", help="copy the model into the package and its figures into docs/")
    args = p.parse_args(argv)
    from mdsim.native_log import quiet_tensorflow_start

    quiet_tensorflow_start()
    if args.tiny:
        args.scores, args.keys, args.seconds, args.test_scores = 6, 6, 6.0, 3
        args.epochs, args.steps, args.triplets, args.bootstrap = 2, 3, 50, 100
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    _step("1/7 render the training corpus and the test corpus (other scores, held-out soundfont)")
    train_manifest = render(out / "train", scores=args.scores, keys=args.keys, seconds=args.seconds, seed=0,
                            soundfonts=args.soundfont or TRAIN_SOUNDFONTS, jobs=args.jobs,
                            with_mastering=args.mastering)
    test_manifest = render(out / "test", scores=args.test_scores, keys=args.keys, seconds=args.seconds, seed=1,
                           soundfonts=[args.test_soundfont], jobs=args.jobs, with_mastering=args.mastering)

    _step("2/7 mdsim prep, exact labels")
    prep(train_manifest, out / "train.h5")
    prep(test_manifest, out / "test.h5")

    _step(f"3/7 mdsim train --config {args.config}")
    run = out / "run"
    train(out / "train.h5", run, epochs=args.epochs, steps=args.steps, config=args.config)
    model_path = run / "best.keras"

    _step("4/7 score on the test corpus")
    results_path = out / "figures.json"
    results = {"recipe": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                          if k not in ("ship", "out")}}
    results["recipe"]["soundfont"] = list(args.soundfont or TRAIN_SOUNDFONTS)
    with open(test_manifest, newline="", encoding="utf-8") as f:
        results["test tracks"] = sum(1 for _ in csv.DictReader(f))
    with open(train_manifest, newline="", encoding="utf-8") as f:
        results["training tracks"] = sum(1 for _ in csv.DictReader(f))
    (out / "triplets").mkdir(exist_ok=True)
    results["rendered"] = score_set(out / "test.h5", out / "triplets", model_path, dims=DIMENSIONS,
                                    n=args.triplets, bootstrap=args.bootstrap, sound="score")
    results["model bytes"] = model_path.stat().st_size
    from mdsim.search.catalog import file_sha256

    results["model sha256"] = file_sha256(model_path)

    if not args.tiny:
        _step("5/7 real recordings (madmom's key and tempo)")
        from mdsim.data import AUDIO_DIR

        real = args.real or AUDIO_DIR
        prep(real, out / "real.h5", annotate="madmom")
        stores = {"bundled": (out / "real.h5", f"{real}, madmom's tempo and key as the reference")}
        for item in args.real_store:
            name, _, path = item.partition("=")
            stores[name] = (Path(path), f"{path}, annotated")
        results["real"] = {}
        for name, (store, about) in stores.items():
            (out / f"triplets_{name}").mkdir(exist_ok=True)
            scores = score_set(store, out / f"triplets_{name}", model_path, dims=("tempo", "key"), n=args.triplets,
                               bootstrap=args.bootstrap, sound="halves")
            tracks = next(iter(scores.values()))["tracks"] if scores else 0
            results["real"][name] = {"about": f"{tracks} tracks; {about}", **scores}

        _step("6/7 speed on one core")
        files = sorted((out / "test" / "audio").glob("*.wav"))  # the test corpus, a library's worth of files
        results["speed"] = speed(model_path, files)
    results["wall seconds"] = round(time.perf_counter() - t0, 1)  # of this call (steps found done are skipped)
    results_path.write_text(json.dumps(results, indent=1))
    text = table(results)
    (out / "figures.md").write_text(text)
    print(text)

    if args.ship:
        _step("7/7 ship")
        if args.tiny:
            raise SystemExit("--ship takes the full recipe's model, not --tiny's")
        size = model_path.stat().st_size
        if size > MAX_MODEL_BYTES:
            raise SystemExit(f"{model_path}: {size / 1e6:.1f} MB, over the wheel's {MAX_MODEL_BYTES / 1e6:.0f} MB")
        SHIPPED_MODEL.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(model_path, SHIPPED_MODEL)
        SHIPPED_DOCS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(results_path, SHIPPED_DOCS / "figures.json")
        shutil.copyfile(out / "figures.md", SHIPPED_DOCS / "figures.md")
        for name in ("log.csv", "config.toml"):
            if (run / name).exists():
                shutil.copyfile(run / name, SHIPPED_DOCS / name)
        print(f"shipped {SHIPPED_MODEL} ({size / 1e6:.2f} MB) and {SHIPPED_DOCS}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
