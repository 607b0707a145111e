"""Agreement and speed of the tempo and key annotators of ``mdsim prep --annotate``.

Three ways, in one process and one run:

- ``fast``: onset tempogram + long-frame chroma key profiles (:mod:`mdsim.features.estimate`),
  timed including the onset envelope computed from the signal (one more STFT); its key
  from the model's CENS instead is scored too (``fast-cens-key``);
- ``madmom-22k``: madmom on the 22 050 Hz signal upsampled to 44.1 kHz (before issue 13);
- ``madmom-44k``: madmom on the source decoded at 44.1 kHz (now), timed including that decode.

On a synthetic corpus (``mdsim.synth``, rendered at 44.1 kHz so the source has a top
octave) each is scored against the true labels; on the bundled recordings (22 050 Hz
sources, so both madmom ways get the same input) fast is scored against madmom.
Tempo agrees within 4 %, and within 4 % up to a factor 2**k; key: exact, same tonic
(parallel), relative, a fifth, and the MIREX weighted score (1, 0.5 fifth, 0.3 relative,
0.2 parallel). Speed is audio seconds per wall second of the annotator alone.

    python experiments/bench_annotate.py [--n 40] [--duration 10] [--seed 0] [--tempo-mode full]
                                         [--no-bundled] [--json PATH]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing

from mdsim import synth  # noqa: E402
from mdsim.audio import load_audio  # noqa: E402
from mdsim.data import AUDIO_DIR  # noqa: E402
from mdsim.features.annotators import annotate_track  # noqa: E402
from mdsim.features.spectral import extract_features  # noqa: E402
from mdsim.features.estimate import key_from_chroma  # noqa: E402
from mdsim.labels import key_name, parse_key  # noqa: E402

SR = 22050
TEMPO_TOLERANCE = 0.04
METHODS = ("fast", "madmom-22k", "madmom-44k")
#: Also scored: the fast key from the model's CENS (43 Hz bins) in place of the long frames.
KEY_ONLY = "fast-cens-key"


def tempo_scores(estimate: float, truth: float) -> dict:
    if not (np.isfinite(estimate) and np.isfinite(truth)):
        return {"tempo_4pct": False, "tempo_4pct_octave": False}
    ratio = estimate / truth
    return {"tempo_4pct": abs(ratio - 1) <= TEMPO_TOLERANCE,
            "tempo_4pct_octave": abs(ratio / 2.0 ** np.round(np.log2(ratio)) - 1) <= TEMPO_TOLERANCE}


def key_scores(estimate: int, truth: int) -> dict:
    if estimate < 0 or truth < 0:
        return {"key_exact": False, "key_parallel": False, "key_relative": False, "key_fifth": False,
                "key_mirex": 0.0}
    (pe, me), (pt, mt) = divmod(estimate, 12)[::-1], divmod(truth, 12)[::-1]
    exact = estimate == truth
    parallel = pe == pt and me != mt
    # relative: C major <-> A minor (the minor tonic 3 semitones below the major one)
    relative = me != mt and (pe - pt) % 12 == (9 if mt == 0 else 3)
    fifth = me == mt and (pe - pt) % 12 in (5, 7)
    mirex = 1.0 if exact else 0.5 if fifth else 0.3 if relative else 0.2 if parallel else 0.0
    return {"key_exact": exact, "key_parallel": parallel, "key_relative": relative, "key_fifth": fifth,
            "key_mirex": mirex}


def _annotate(method: str, y22: np.ndarray, features: dict, path: Path, tempo_mode: str) -> tuple[dict, float]:
    """One annotator's store attributes and its wall time."""
    start = time.perf_counter()
    if method == "fast":
        a = annotate_track({}, y=y22, sr=SR, features=features, path=path, method="fast")
    else:  # path None: madmom gets y22 upsampled, the old way
        a = annotate_track({}, y=y22, sr=SR, features=features, method="madmom", tempo_mode=tempo_mode,
                           path=path if method == "madmom-44k" else None)
    return a, time.perf_counter() - start


def _summary(rows: list[dict], methods, audio_seconds: float) -> dict:
    out = {}
    for m in methods:
        scores = [r[m]["scores"] for r in rows]
        seconds = sum(r[m]["seconds"] for r in rows)
        out[m] = {k: round(float(np.mean([s[k] for s in scores])), 3) for k in scores[0]}
        out[m]["x_real_time"] = round(audio_seconds / seconds, 1)
    return out


def bench_synthetic(n: int, duration: float, seed: int, tempo_mode: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        manifest = synth.generate_corpus(tmp, n, seed, duration_range=(duration, duration), sr=44100)
        with open(manifest, newline="", encoding="utf-8") as f:
            truth = list(csv.DictReader(f))
        rows, audio = [], 0.0
        for i, t in enumerate(truth):
            path = manifest.parent / t["path"]
            y22 = load_audio(path, sr=SR)
            audio += len(y22) / SR
            features = extract_features(y22)
            start = time.perf_counter()
            cens_key, _ = key_from_chroma(features["cens"], sr=SR, hop_length=256)
            row = {KEY_ONLY: {"tempo": float("nan"), "key": key_name(cens_key) or "",
                              "seconds": time.perf_counter() - start,
                              "scores": key_scores(-1 if cens_key is None else cens_key, parse_key(t["key"]))}}
            for m in METHODS:
                a, seconds = _annotate(m, y22, features, path, tempo_mode)
                row[m] = {"tempo": a["tempo"], "key": a["key"], "seconds": seconds,
                          "scores": {**tempo_scores(a["tempo"], float(t["tempo"])),
                                     **key_scores(a["key_index"], parse_key(t["key"]))}}
            rows.append(row)
            print(f"{i + 1:3d}/{n} tempo {float(t['tempo']):6.1f} key {t['key']:9s} | "
                  + " | ".join(f"{m} {row[m]['tempo']:6.1f} {row[m]['key'] or '-':9s}" for m in METHODS),
                  file=sys.stderr, flush=True)
    return {"tracks": n, "seconds_each": duration, "seed": seed, "sample_rate": 44100,
            "tempo_mode": tempo_mode, "audio_seconds": round(audio, 1),
            "against_truth": _summary(rows, METHODS + (KEY_ONLY,), audio)}


def bench_bundled(tempo_mode: str) -> dict:
    rows, audio, per_track = [], 0.0, {}
    for path in sorted(AUDIO_DIR.glob("*.ogg")):
        y22 = load_audio(path, sr=SR)
        audio += len(y22) / SR
        features = extract_features(y22)
        fast, fast_s = _annotate("fast", y22, features, path, tempo_mode)
        mm, mm_s = _annotate("madmom-44k", y22, features, path, tempo_mode)
        scores = {**tempo_scores(fast["tempo"], mm["tempo"]), **key_scores(fast["key_index"], mm["key_index"])}
        rows.append({"fast": {"scores": scores, "seconds": fast_s},
                     "madmom": {"scores": scores, "seconds": mm_s}})
        per_track[path.stem] = {"fast": [round(fast["tempo"], 1), fast["key"]],
                                "madmom": [round(mm["tempo"], 1), mm["key"]]}
        print(f"{path.stem:10s} fast {fast['tempo']:6.1f} {fast['key'] or '-':9s} madmom {mm['tempo']:6.1f} "
              f"{mm['key'] or '-':9s}", file=sys.stderr, flush=True)
    summary = _summary(rows, ("fast", "madmom"), audio)
    return {"recordings": len(rows), "audio_seconds": round(audio, 1), "tempo_mode": tempo_mode,
            "fast_vs_madmom": {k: v for k, v in summary["fast"].items() if k != "x_real_time"},
            "x_real_time": {m: summary[m]["x_real_time"] for m in ("fast", "madmom")},
            "per_track": per_track}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=40, help="synthetic tracks (default 40)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per synthetic track (default 10)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tempo-mode", choices=("full", "fast"), default="full")
    parser.add_argument("--no-bundled", action="store_true", help="skip the bundled recordings")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    from mdsim.features.annotate import get_annotator

    get_annotator(args.tempo_mode)  # load the networks before any timing
    result = {"synthetic": bench_synthetic(args.n, args.duration, args.seed, args.tempo_mode)}
    if not args.no_bundled:
        result["bundled"] = bench_bundled(args.tempo_mode)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
