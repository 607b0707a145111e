"""``mdsim inspect``: the tracks of a features store, verified or upgraded."""

from __future__ import annotations

import sys


def add_parser(sub) -> None:
    p = sub.add_parser("inspect", help="list the tracks of a features store",
                       description="Print one line per track of a features store (duration, frames, "
                                   "tempo, key, labels) and the failed inputs with their reasons.")
    p.add_argument("store", help="a features store written by `mdsim prep`")
    p.add_argument("--verify", action="store_true",
                   help="read every feature matrix through its checksums and list damaged tracks (exit 1 if any)")
    p.add_argument("--upgrade", action="store_true",
                   help="convert a version-1 store to the current layout (one copy; no audio needed)")
    p.set_defaults(run=run)


def run(args) -> int:
    from mdsim.features.store import FeatureStore, upgrade_store
    from mdsim.labels import TAG_DIMENSIONS

    if args.upgrade:
        upgrade_store(args.store, log=sys.stdout)
    with FeatureStore(args.store) as store:
        print(f"{args.store}: {len(store)} tracks, {len(store.failures())} failed, "
              f"{store.n_shards()} shards, {store.layout} layout")
        print(f"{'track':<28} {'seconds':>8} {'frames':>7} {'tempo':>7}  {'key':<9} labels")
        for tid in store.track_ids():
            a = store.attrs(tid)
            tags = "; ".join(f"{d}={a[d]}" for d in TAG_DIMENSIONS if a.get(d))
            flag = " (shorter than 3 s)" if a.get("too_short") else ""
            print(f"{tid:<28} {a['duration']:>8.1f} {a['n_frames']:>7d} {a['tempo']:>7.1f}  "
                  f"{a['key'] or '-':<9} {tags}{flag}")
        for tid, path, reason in store.failures():
            print(f"FAILED {tid}: {reason}")
        if args.verify:
            from tqdm import tqdm

            bad = store.verify(progress=lambda ids: tqdm(ids, desc="verify", unit="track", file=sys.stderr))
            for tid, reason in bad:
                print(f"DAMAGED {tid}: {reason}")
            print(f"verify: {len(bad)} of {len(store)} tracks damaged")
            return 1 if bad else 0
    return 0
