"""Benchmark of `mdsim prep`'s parts on the bundled recordings, in one run.

Prints, per stage, audio seconds processed per wall second (x real time, one
process) and the peak of memory allocated during the stage (tracemalloc):

- the fused extractor (one STFT -> mel, CENS, tempogram),
- the straightforward three-call librosa path (melspectrogram, chroma_cens,
  tempogram, each on its own),
- madmom tempo + key in full (8 beat networks) and fast (2) mode,

and how often the fast tempo agrees with the full one (within 4 %, and
within 4 % up to a tempo octave).

and, with ``--end-to-end DIR``, ``mdsim prep`` as a whole (decode, features, annotation,
store write) on two worker processes, each annotator in turn, on generated tracks
(clicks over a chord, ``--tracks`` of ``--seconds``; madmom on a tenth of them):

    python experiments/bench_prep.py [--repeats 3] [--no-madmom]
    python experiments/bench_prep.py --end-to-end runs/bench_prep [--tracks 120] [--seconds 30]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from pathlib import Path

import numpy as np

from mdsim.audio import load_audio
from mdsim.config import FeatureConfig
from mdsim.data import AUDIO_DIR as AUDIO
from mdsim.features.spectral import extract_features, extract_features_reference



def timed(fn, signals, repeats):
    """Best-of-``repeats`` total seconds over all signals, and peak traced bytes."""
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for y in signals:
            fn(y)
        best = min(best, time.perf_counter() - t)
    tracemalloc.start()
    for y in signals:
        fn(y)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return best, peak


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-madmom", action="store_true")
    p.add_argument("--end-to-end", type=Path, default=None, metavar="DIR",
                   help="time whole prep runs on two workers in DIR instead")
    p.add_argument("--tracks", type=int, default=120)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    if args.end_to_end is not None:
        return end_to_end(args.end_to_end, n=args.tracks, seconds=args.seconds, workers=args.workers,
                          madmom=not args.no_madmom)

    files = sorted(AUDIO.glob("*.ogg"))
    signals = [load_audio(f) for f in files]
    seconds = sum(len(y) for y in signals) / 22050
    cfg = FeatureConfig()
    extract_features(signals[0][:22050], config=cfg)  # warm caches (filter banks)
    print(f"{len(files)} recordings, {seconds:.1f} s of audio, one process\n")
    print(f"{'stage':<34} {'x real time':>12} {'peak MiB':>9}")
    rows = {}
    for name, fn in (("fused extractor (one STFT)", lambda y: extract_features(y, config=cfg)),
                     ("three-call librosa path", lambda y: extract_features_reference(y, config=cfg))):
        t, peak = timed(fn, signals, args.repeats)
        rows[name] = t
        print(f"{name:<34} {seconds / t:>12.1f} {peak / 2**20:>9.1f}")
    ratio = rows["three-call librosa path"] / rows["fused extractor (one STFT)"]
    print(f"\nfused / three-call speed ratio: {ratio:.1f}x")

    if args.no_madmom:
        return
    from mdsim.features.annotate import Annotator

    tempi = {}
    for mode in ("full", "fast"):
        annotator = Annotator(tempo_mode=mode)
        annotator(signals[-1][: 5 * 22050], 22050)  # warm
        out = []
        t, peak = timed(lambda y: out.append(annotator(y, 22050)), signals, 1)
        tempi[mode] = [o["tempo"] for o in out[: len(signals)]]
        print(f"{'madmom tempo + key, ' + mode:<34} {seconds / t:>12.1f} {peak / 2**20:>9.1f}")
    full, fast = np.array(tempi["full"]), np.array(tempi["fast"])
    exact = np.abs(fast - full) <= 0.04 * full
    octave = np.min([np.abs(fast * 2.0 ** k - full) for k in (-1, 0, 1)], axis=0) <= 0.04 * full
    print(f"\nfast vs full tempo: {exact.sum()}/{len(full)} agree within 4 %, "
          f"{octave.sum()}/{len(full)} up to a tempo octave")
    for f, a, b in zip(files, full, fast):
        print(f"  {f.stem:<12} full {a:6.1f}  fast {b:6.1f}")


def end_to_end(folder: Path, *, n: int, seconds: float, workers: int, madmom: bool) -> None:
    """Whole ``prep`` runs, one per annotator, each into a fresh store, in one run."""
    import csv
    import shutil

    import soundfile as sf

    from mdsim.features.pipeline import prep

    audio = folder / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    sr = 22050
    t = np.arange(int(seconds * sr)) / sr
    rows = []
    for i in range(n):
        path = audio / f"e{i:04d}.wav"
        if not path.exists():
            bpm, root = 70 + (i * 11) % 110, 110 * 2 ** ((i % 12) / 12)
            y = sum(0.15 * np.sin(2 * np.pi * root * 2 ** (k / 12) * t) for k in (0, 4, 7, 12))
            beat = (t * bpm / 60) % 1.0
            y = y + 0.5 * np.exp(-beat * 30) * np.sin(2 * np.pi * 1500 * t)
            sf.write(path, y.astype(np.float32), sr, subtype="PCM_16")
        rows.append({"track_id": path.stem, "path": f"audio/{path.name}", "genre": "test"})
    manifests = {}
    for name, part in (("all", rows), ("tenth", rows[: max(2, n // 10)])):
        manifests[name] = folder / f"{name}.csv"
        with open(manifests[name], "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(part)
    print(f"prep end to end, {workers} workers, generated tracks of {seconds:.0f} s "
          "(wall time includes starting the workers)\n")
    print(f"{'annotator':<20} {'tracks':>7} {'audio s':>9} {'wall s':>8} {'x real time':>12}")
    runs = [("none", "all"), ("fast", "all")] + ([("madmom", "tenth")] if madmom else [])
    for annotate, which in runs:
        out = folder / f"store_{annotate}.h5"
        out.unlink(missing_ok=True)
        shutil.rmtree(folder / f"store_{annotate}.h5.shards", ignore_errors=True)
        t0 = time.perf_counter()
        s = prep(manifests[which], out, workers=workers, annotate=annotate, tempo_mode="fast", progress=False)
        wall = time.perf_counter() - t0
        print(f"{annotate:<20} {s.done:>7} {s.audio_seconds:>9.0f} {wall:>8.1f} {s.audio_seconds / wall:>12.1f}")


if __name__ == "__main__":
    main()
