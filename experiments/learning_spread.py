"""The spread of the suite's learning tests over seeds and CPU kernels.

A fixed seed does not fix a training's numbers across processors (oneDNN and BLAS pick their
kernels by CPU) nor, for threaded code, across loads, so a learning test's bar is set from
this table rather than from one run: each test's statistic is measured over several seeds and
once more with TensorFlow's other set of CPU kernels (``TF_ENABLE_ONEDNN_OPTS`` flipped from
this machine's default: oneDNN is on by default on some processors only, so the other set is
a stand-in for another processor's), and the bar sits below the worst run (docs/testing.md).

Each run is the test's own ``measure_*`` function (in ``tests/``), in a process of its own,
so the environment of one run does not leak into the next::

    python experiments/learning_spread.py --tests disentanglement,loev,rendered \\
        --seeds 0,1,2,3,4 --other-kernels-seeds 0 --out runs/spread

appends one JSON line per run to ``runs/spread/runs.jsonl`` (a run already there is not run
again, so a killed sweep resumes) and writes ``runs/spread/spread.md``: each statistic's
minimum, mean, maximum and standard deviation over the runs, with the bar the test asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ("disentanglement", "loev", "rendered")


def _import_tests():
    for p in (str(ROOT), str(ROOT / "tests")):
        if p not in sys.path:
            sys.path.insert(0, p)


def _disentanglement(tmp: Path, seed: int) -> dict:
    import test_disentanglement as t

    return t.statistics(t.measure_disentanglement(tmp / "exp", seed))


def _loev(tmp: Path, seed: int) -> dict:
    import test_loev as t

    return t.statistics(t.measure_pitch_subspace(tmp, seed))


def _rendered(tmp: Path, seed: int) -> dict:
    import test_rendered as t

    # the recipe without the summary (what the test's bar guards against) on two seeds only
    return t.statistics(t.measure_key(tmp, seed, recipes=("plain", "cens", "tonic") if seed < 2 else ("cens", "tonic")))


MEASURES = {"disentanglement": _disentanglement, "loev": _loev, "rendered": _rendered}


def run_one(test: str, seed: int) -> dict:
    """One measurement in this process: ``{statistic: value}``, and ``"_onednn"``."""
    _import_tests()
    with tempfile.TemporaryDirectory(prefix=f"spread_{test}_") as tmp:
        stats = MEASURES[test](Path(tmp), seed)
    from conftest import onednn_active

    return {**stats, "_onednn": onednn_active()}


def _cpu() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return os.uname().machine


def _key(test, seed, flipped) -> str:
    return f"{test} seed {seed}{' other kernels' if flipped else ''}"


def _label(row) -> str:
    """``seed 3`` or ``seed 0 oneDNN on`` (the kernels named where the row knows them)."""
    if row.get("label"):  # a run measured elsewhere, added by hand with its source
        return row["label"]
    active = row["stats"].get("_onednn")
    return f"seed {row['seed']}" + ("" if active is None else f" oneDNN {'on' if active else 'off'}")


def summarise(rows: list[dict]) -> str:
    """Markdown: per test and statistic, min / mean / max / standard deviation over its runs."""
    import numpy as np

    text = ["# The spread of the learning tests", "",
            "Each statistic over the runs listed (experiments/learning_spread.py).", ""]
    for test in TESTS:
        runs = [r for r in rows if r["test"] == test]
        if not runs:
            continue
        names = list(dict.fromkeys(n for r in runs for n in r["stats"] if not n.startswith("_")))
        text += [f"## {test}", "", "runs: " + "; ".join(
            f"{_label(r)} ({r['host']}" + ("" if r["seconds"] != r["seconds"] else f", {r['seconds']:.0f} s") + ")"
            for r in runs), "",
            "| statistic | min | mean | max | sd | " + " | ".join(_label(r) for r in runs) + " |",
            "|---|---:|---:|---:|---:|" + "---:|" * len(runs)]
        for name in names:
            v = np.array([r["stats"].get(name, np.nan) for r in runs], dtype=float)
            have = v[~np.isnan(v)]
            sd = have.std(ddof=1) if len(have) > 1 else float("nan")
            text.append(f"| {name} | {have.min():.3f} | {have.mean():.3f} | {have.max():.3f} | {sd:.3f} | "
                        + " | ".join("" if np.isnan(x) else f"{x:.3f}" for x in v) + " |")
        text.append("")
    return "\n".join(text) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tests", default=",".join(TESTS), help=f"comma-separated, of {', '.join(TESTS)}")
    p.add_argument("--seeds", default="0,1,2,3,4", help="seeds with the default kernels (default 0-4)")
    p.add_argument("--other-kernels-seeds", default="0",
                   help="seeds run again with TensorFlow's other CPU kernels (TF_ENABLE_ONEDNN_OPTS set to the "
                        "opposite of this machine's default)")
    p.add_argument("--out", type=Path, required=True, help="folder for runs.jsonl and spread.md")
    p.add_argument("--add", nargs="+", default=[], metavar="LOG",
                   help="fold in the rows a whole suite run wrote (MDSIM_LEARNING_LOG=LOG make test: "
                        "seed 0, the test's own settings) and write the table; runs nothing else")
    p.add_argument("--one", nargs=2, metavar=("TEST", "SEED"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        print("RESULT " + json.dumps(run_one(args.one[0], int(args.one[1]))))
        return 0

    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "runs.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    if args.add:
        for path in args.add:
            for line in Path(path).read_text().splitlines():
                row = json.loads(line)
                rows.append({"test": row["test"], "seed": 0, "flipped": False, "host": f"{_cpu()}, suite {Path(path).stem}",
                             "seconds": float("nan"), "stats": row["stats"]})
        with open(log, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
        (args.out / "spread.md").write_text(summarise(rows))
        print(f"wrote {args.out / 'spread.md'}")
        return 0
    done = {_key(r["test"], r["seed"], r.get("flipped", False)) for r in rows}
    _import_tests()
    from conftest import onednn_active

    default_onednn = onednn_active()
    tests = [t.strip() for t in args.tests.split(",") if t.strip()]
    plan = [(s, False) for s in args.seeds.split(",") if s] + \
        [(s, True) for s in args.other_kernels_seeds.split(",") if s]
    for seed, flipped in plan:  # seed by seed, so every test has a few runs early
        for test in tests:
            if _key(test, int(seed), flipped) in done:
                continue
            env = dict(os.environ)
            if flipped:
                env["TF_ENABLE_ONEDNN_OPTS"] = "0" if default_onednn else "1"
            start = time.time()
            done_run = subprocess.run([sys.executable, __file__, "--one", test, seed, "--out", str(args.out)], env=env, cwd=ROOT,
                                      capture_output=True, text=True)
            if done_run.returncode != 0:
                print(f"{_key(test, seed, flipped)} failed:\n{done_run.stderr[-3000:]}", file=sys.stderr)
                continue
            result = next(line for line in done_run.stdout.splitlines() if line.startswith("RESULT "))
            row = {"test": test, "seed": int(seed), "flipped": flipped, "host": _cpu(),
                   "seconds": time.time() - start, "stats": json.loads(result[len("RESULT "):])}
            with open(log, "a") as f:
                f.write(json.dumps(row) + "\n")
            rows.append(row)
            (args.out / "spread.md").write_text(summarise(rows))
            print(f"{_key(test, seed, flipped)}: {time.time() - start:.0f} s", flush=True)
    (args.out / "spread.md").write_text(summarise(rows))
    print(f"wrote {args.out / 'spread.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
