"""Benchmarks of the synthetic music generator (``mdsim.synth``).

Speed: seconds of audio generated per wall-clock second (and per CPU second of
this process, the fairer clock on a shared machine), one process, every
factor class drawn so that all code paths count::

    python experiments/bench_synth.py speed --n 30 --duration 20

Agreement: madmom's tempo and key (``mdsim.features.annotate``, as ``mdsim
prep`` runs them) against the labels of a generated corpus; tempo agrees
within 4 % up to a factor 2**k, key by tonic and exactly::

    python experiments/bench_synth.py agreement --n 100 --seed 0 --duration-range 10 30

Both print a summary and, with ``--json PATH``, write the figures there.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing

from mdsim import synth  # noqa: E402
from mdsim.labels import key_name, parse_key  # noqa: E402

TEMPO_TOLERANCE = 0.04


def _track(row: dict) -> np.ndarray:
    return synth.generate_track(row["seed"], tempo=row["tempo"], key=row["key"], genre=row["genre"],
                                mood=row["mood"], instrument=row["instrument"], era=row["era"],
                                duration=row["duration"])


def bench_speed(n: int, duration: float, seed: int) -> dict:
    """Real-time factor of :func:`synth.generate_track`, overall and per factor class."""
    rows = synth.draw_labels(n, seed, duration_range=(duration, duration))
    _track({**rows[0], "duration": 2.0})  # warm-up: imports, filter designs
    per_class = defaultdict(list)
    total = 0.0
    cpu_start = time.process_time()
    for row in rows:
        start = time.perf_counter()
        _track(row)
        elapsed = time.perf_counter() - start
        total += elapsed
        for name in ("genre", "mood", "instrument", "era"):
            per_class[f"{name}={row[name]}"].append(row["duration"] / elapsed)
    cpu = time.process_time() - cpu_start
    return {
        "tracks": n,
        "audio_seconds": n * duration,
        "wall_seconds": round(total, 3),
        "x_real_time": round(n * duration / total, 1),
        # on a shared machine the process's CPU time is the fairer clock
        "cpu_seconds": round(cpu, 3),
        "x_real_time_cpu": round(n * duration / cpu, 1),
        "x_real_time_slowest_class": min((round(float(np.mean(v)), 1), k) for k, v in per_class.items()),
    }


def tempo_agrees(estimate: float, truth: float) -> bool:
    ratio = estimate / truth
    return abs(ratio / 2.0 ** np.round(np.log2(ratio)) - 1) <= TEMPO_TOLERANCE


def bench_agreement(n: int, seed: int, duration_range) -> dict:
    """madmom tempo and key against the labels of ``n`` generated tracks."""
    from mdsim.features.annotate import get_annotator

    annotator = get_annotator("full")
    rows = synth.draw_labels(n, seed, duration_range=duration_range)
    hits = {"tempo": 0, "tonic": 0, "key": 0}
    misses = defaultdict(lambda: defaultdict(int))
    start = time.perf_counter()
    for i, row in enumerate(rows):
        found = annotator(_track(row), synth.SAMPLE_RATE)
        key = parse_key(row["key"])
        ok = {"tempo": tempo_agrees(found["tempo"], row["tempo"]),
              "tonic": found["key"] % 12 == key % 12, "key": found["key"] == key}
        for what, good in ok.items():
            hits[what] += good
            if not good:
                for name in ("genre", "mood", "instrument", "era"):
                    misses[what][f"{name}={row[name]}"] += 1
        print(f"{i + 1:4d}/{n} {row['track_id']} {row['genre']:9s} {row['mood']:10s} {row['instrument']:8s} "
              f"{row['era']:7s} tempo {row['tempo']:6.2f} -> {found['tempo']:6.2f} "
              f"{'ok' if ok['tempo'] else 'MISS'}  key {row['key']:8s} -> {key_name(found['key']):8s} "
              f"{'ok' if ok['tonic'] else 'MISS'}", file=sys.stderr, flush=True)
    return {
        "tracks": n,
        "seed": seed,
        "duration_range": list(duration_range),
        "tempo_agreement": round(hits["tempo"] / n, 4),
        "key_tonic_agreement": round(hits["tonic"] / n, 4),
        "key_exact_agreement": round(hits["key"] / n, 4),
        "misses_by_class": {what: dict(sorted(m.items())) for what, m in misses.items()},
        "wall_seconds": round(time.perf_counter() - start, 1),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    speed = sub.add_parser("speed", help="seconds of audio generated per wall second")
    speed.add_argument("--n", type=int, default=30)
    speed.add_argument("--duration", type=float, default=20.0)
    speed.add_argument("--seed", type=int, default=0)
    agree = sub.add_parser("agreement", help="madmom tempo and key against the labels")
    agree.add_argument("--n", type=int, default=100)
    agree.add_argument("--seed", type=int, default=0)
    agree.add_argument("--duration-range", type=float, nargs=2, default=synth.DURATION_RANGE,
                       metavar=("MIN", "MAX"))
    for p in (speed, agree):
        p.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    if args.what == "speed":
        result = bench_speed(args.n, args.duration, args.seed)
    else:
        result = bench_agreement(args.n, args.seed, tuple(args.duration_range))
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
