"""Embedding throughput on the bundled recordings: end to end vs network only.

For each batch size, in one run:

- end to end: ``Model.embed`` on the audio files (decode, resample, features,
  network), seconds of audio embedded per wall-clock second;
- network only: the same segments, features precomputed;
- decode + features only (no network), for the share of the pipeline;

and the peak resident memory of the process. The model is an untrained
multi-input model of the default size (weights do not change the cost),
unless ``--model`` names a trained one.

    python experiments/bench_embed.py [--batch-sizes 16 64 256] [--model runs/x/best.keras]
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np

from mdsim.data import AUDIO_DIR as AUDIO


def best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 64, 256])
    p.add_argument("--model", default=None)
    p.add_argument("--width", type=float, default=1.0, help="width of the untrained model")
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args(argv)

    import keras

    import mdsim
    from mdsim.api import Model
    from mdsim.audio import load_audio
    from mdsim.features.spectral import extract_features
    from mdsim.model import ModelConfig, build_model

    if args.model:
        model = mdsim.load_model(args.model)
    else:
        config = ModelConfig(width=args.width)
        model = Model(build_model(config), config, path="untrained")
    files = sorted(AUDIO.glob("*.ogg"))
    seconds = sum(len(load_audio(f)) for f in files) / 22050
    print(f"keras {keras.__version__}, backend {keras.backend.backend()}, {model.config.backbone} "
          f"width {model.config.width}, {len(files)} recordings, {seconds:.1f} s of audio")

    def features_only():
        return [extract_features(load_audio(f), config=model.feature_config) for f in files]

    t_feat = best_of(features_only, args.repeats)
    feats = features_only()
    cut = [model.segments_from_features(f)[0] for f in feats]
    inputs = {k: np.concatenate([c[k] for c in cut]) for k in model.config.inputs}
    n_seg = len(next(iter(inputs.values())))
    print(f"decode + features only: {seconds / t_feat:.1f}x real time\n")
    print(f"{'batch':>5} {'end to end x rt':>16} {'network only x rt':>18} {'segments/s':>11} "
          f"{'network share':>14}")
    for bs in args.batch_sizes:
        model.embed_segments({k: v[:bs] for k, v in inputs.items()}, batch_size=bs)  # warm / trace
        t_net = best_of(lambda: model.embed_segments(inputs, batch_size=bs), args.repeats)
        t_all = best_of(lambda: model.embed(files, batch_size=bs), args.repeats)
        print(f"{bs:>5} {seconds / t_all:>16.1f} {seconds / t_net:>18.1f} {n_seg / t_net:>11.1f} "
              f"{t_net / t_all:>13.0%}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak resident memory: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
