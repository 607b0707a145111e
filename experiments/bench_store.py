"""Benchmark of the features store at catalog scale, in one run, under ``ulimit -n 1024``.

1. generate N short tracks (default 20,000 of 1 s; tempo and key in the manifest, so no
   annotation runs) and 100 more;
2. ``prep`` a tenth of them into a fresh store and all N into another (each in its own
   process, so peak memory is that run's): time per track, peak resident memory of each
   (flat against the track count?);
3. ``prep`` the N + 100 manifest into the N-track store: the 100 new tracks only, the time
   of that run against the first (it must follow the 100 new tracks, not the N);
4. bytes per second of audio of the compact layout against the full one (the tempogram
   stored; the version-1 layout was the full one plus a group per track).

    python experiments/bench_store.py [--n 20000] [--seconds 1.0] [--workers 2] [--out runs/bench_store]

Writes ``OUT/bench_store.md`` and prints it.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SR = 22050
NOFILE = 1024


def generate(folder: Path, n: int, seconds: float, *, first: int = 0) -> list[dict]:
    """``n`` tracks of clicks over a tone, each a different tempo and pitch."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * SR)) / SR
    rows = []
    for i in range(first, first + n):
        bpm = 60 + (i * 7) % 140
        y = 0.2 * np.sin(2 * np.pi * (200 + (i * 13) % 900) * t)
        beat = (t * bpm / 60) % 1.0
        y += 0.5 * np.exp(-beat * 40) * np.sin(2 * np.pi * 2000 * t)
        path = folder / f"g{i:06d}.wav"
        if not path.exists():
            sf.write(path, y.astype(np.float32), SR, subtype="PCM_16")
        rows.append({"track_id": f"g{i:06d}", "path": path.name, "tempo": bpm,
                     "key": ["C major", "A minor", "F# minor", "Eb major"][i % 4]})
    return rows


def write_manifest(path: Path, rows: list[dict]) -> Path:
    import csv

    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def run_prep(manifest: Path, out: Path, *, workers: int, layout: str = "compact") -> dict:
    """One ``prep`` in its own process under ``ulimit -n 1024``: wall time, peak RSS, summary."""
    code = ("import json, resource, sys, time; from mdsim.features.pipeline import prep; "
            "t = time.perf_counter(); "
            f"s = prep({str(manifest)!r}, {str(out)!r}, workers={workers}, layout={layout!r}, progress=False); "
            "w = time.perf_counter() - t; "
            "print(json.dumps({'done': s.done, 'skipped': s.skipped, 'failed': s.failed, 'wall': w, "
            "'audio': s.audio_seconds, 'rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "
            "'workers_rss_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))")

    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))

    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, preexec_fn=limit)
    if proc.returncode != 0:
        raise SystemExit(f"prep failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_wall"] = time.perf_counter() - t0
    return result


def store_bytes(out: Path) -> int:
    from mdsim.features.store import shard_paths

    return out.stat().st_size + sum(p.stat().st_size for p in shard_paths(out))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=20000, help="tracks of the large store (default 20000)")
    p.add_argument("--seconds", type=float, default=1.0, help="length of each track (default 1.0)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("runs/bench_store"))
    args = p.parse_args(argv)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    audio = out / "audio"

    t = time.perf_counter()
    rows = generate(audio, args.n + 100, args.seconds)
    print(f"generated {len(rows)} tracks of {args.seconds} s in {time.perf_counter() - t:.0f} s", flush=True)
    small = write_manifest(audio / "small.csv", rows[: args.n // 10])
    large = write_manifest(audio / "large.csv", rows[: args.n])
    more = write_manifest(audio / "more.csv", rows)
    for name in ("small.h5", "large.h5", "full.h5"):
        import shutil

        (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / f"{name}.shards", ignore_errors=True)

    r_small = run_prep(small, out / "small.h5", workers=args.workers)
    print("small", r_small, flush=True)
    r_large = run_prep(large, out / "large.h5", workers=args.workers)
    print("large", r_large, flush=True)
    r_more = run_prep(more, out / "large.h5", workers=args.workers)
    print("more", r_more, flush=True)
    r_full = run_prep(small, out / "full.h5", workers=args.workers, layout="full")
    print("full", r_full, flush=True)

    audio_small = r_small["audio"]
    compact_bps = store_bytes(out / "small.h5") / audio_small
    full_bps = store_bytes(out / "full.h5") / r_full["audio"]
    n_small = r_small["done"]
    lines = [
        f"# Store benchmark: {args.n} + 100 tracks of {args.seconds} s, ulimit -n {NOFILE}, "
        f"{args.workers} workers",
        "",
        "`python experiments/bench_store.py " + " ".join(argv if argv is not None else sys.argv[1:]) + "`",
        "",
        "| run | tracks computed | skipped | wall s | ms per computed track | peak RSS writer MB | peak RSS worker MB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in (("fresh store, N/10 tracks", r_small), ("fresh store, N tracks", r_large),
                    ("N-track store + 100 new", r_more), ("full layout, N/10 tracks", r_full)):
        per = 1000 * r["wall"] / max(r["done"], 1)
        lines.append(f"| {name} | {r['done']} | {r['skipped']} | {r['wall']:.1f} | {per:.1f} | "
                     f"{r['rss_mb']:.0f} | {r['workers_rss_mb']:.0f} |")
    lines += [
        "",
        f"- resume: the run that added 100 tracks to the {args.n}-track store took "
        f"{r_more['wall']:.1f} s against {r_large['wall']:.1f} s for the {args.n} "
        f"(ratio {r_more['wall'] / r_large['wall']:.4f}; new tracks / all = {100 / args.n:.4f}); "
        f"its fixed part is reading the store's index and the manifest.",
        f"- peak writer memory: {r_small['rss_mb']:.0f} MB at {n_small} tracks, {r_large['rss_mb']:.0f} MB at "
        f"{r_large['done']} tracks (ratio {r_large['rss_mb'] / r_small['rss_mb']:.2f} for "
        f"{r_large['done'] / max(n_small, 1):.0f}x the tracks).",
        f"- bytes per second of audio: compact {compact_bps / 1000:.1f} KB, full {full_bps / 1000:.1f} KB "
        f"(ratio {full_bps / compact_bps:.2f}); version 1 measured about 94 KB.",
        f"- files: {len(list((out / 'large.h5.shards').glob('*.h5')))} shards in the large store.",
    ]
    text = "\n".join(lines) + "\n"
    (out / "bench_store.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
