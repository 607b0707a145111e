"""Benchmark of `mdsim prep`'s parts on the bundled recordings, in one run.

Prints, per stage, audio seconds processed per wall second (x real time, one
process) and the peak of memory allocated during the stage (tracemalloc):

- the fused extractor (one STFT -> mel, CENS, tempogram),
- the straightforward three-call librosa path (melspectrogram, chroma_cens,
  tempogram, each on its own),
- madmom tempo + key in full (8 beat networks) and fast (2) mode,

and how often the fast tempo agrees with the full one (within 4 %, and
within 4 % up to a tempo octave).

    python experiments/bench_prep.py [--repeats 3] [--no-madmom]
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
    args = p.parse_args(argv)

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


if __name__ == "__main__":
    main()
