"""How far each subspace moves when the audio is manipulated (McCallum et al.'s Figure 2).

Each track is embedded as it is and manipulated on the audio, independently of the
feature-domain augmentation training uses: pitch-shifted by librosa's pitch
shifter, time-stretched by its phase vocoder, equalised by random filters
(:func:`mdsim.features.augment.eq_audio`) whose gains are scaled to the amount.
Per subspace (and the full embedding) the cosine distance between the original's
and the manipulated version's track embeddings is collected against the amount:

- ``curves``: ``{manipulation: {space: [(amount, mean, q25, q75), ...]}}``;
- ``matrix``: ``{space: {manipulation: sensitivity}}``, the mean distance over the
  non-identity amounts divided by the mean distance between different tracks in the
  same space (1: the manipulation moves a track as far as swapping it for another
  track; 0: not at all). With one track the raw mean distance is given instead.
"""

from __future__ import annotations

import numpy as np

from mdsim.errors import InputError

#: Default amounts: semitones, stretch rates, EQ gains in dB.
DEFAULT_AMOUNTS = {
    "pitch": tuple(range(-6, 7)),
    "stretch": (0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4),
    "eq": (0.0, 3.0, 6.0, 9.0, 12.0),
}
IDENTITY_AMOUNT = {"pitch": 0, "stretch": 1.0, "eq": 0.0}


def manipulate(y, sr: int, kind: str, amount, *, seed: int = 0) -> np.ndarray:
    """``y`` pitch-shifted by ``amount`` semitones, time-stretched by rate ``amount``
    (> 1 faster), or equalised by three filters with gains up to ``amount`` dB
    (the same filter shapes for every amount of one ``seed``)."""
    import librosa

    from mdsim.features.augment import eq_audio, random_eq

    y = np.asarray(y, dtype=np.float32)
    if kind not in IDENTITY_AMOUNT:
        raise InputError(f"unknown manipulation {kind!r} (valid: pitch, stretch, eq)")
    if amount == IDENTITY_AMOUNT[kind]:
        return y
    if kind == "pitch":
        return librosa.effects.pitch_shift(y, sr=sr, n_steps=float(amount)).astype(np.float32)
    if kind == "stretch":
        if amount <= 0:
            raise InputError(f"stretch rate {amount} must be positive")
        return librosa.effects.time_stretch(y, rate=float(amount)).astype(np.float32)
    if kind == "eq":
        unit = random_eq(np.random.default_rng(seed), n_filters=3, max_gain_db=1.0, sr=sr)
        filters = tuple((k, f, g * float(amount), q) for k, f, g, q in unit)
        return eq_audio(y, filters, sr=sr)


def _cosine(a, b) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return 1.0 - float(a @ b / (na * nb)) if na > 0 and nb > 0 else 1.0


def sensitivity(model, audio, *, amounts: dict | None = None, progress: bool = True) -> dict:
    """Distances between the embeddings of tracks and of their manipulated versions.

    Parameters
    ----------
    model : mdsim.api.Model
    audio : list of paths
    amounts : dict, optional
        ``{manipulation: amounts}``; default :data:`DEFAULT_AMOUNTS`.

    Returns
    -------
    dict
        ``{"tracks": [...], "spaces": [...], "curves": ..., "matrix": ..., "between": {space: d}}``
        (see the module text).
    """
    from tqdm.auto import tqdm

    from mdsim.audio import load_audio
    from mdsim.features.spectral import extract_features

    amounts = {k: tuple(v) for k, v in (amounts or DEFAULT_AMOUNTS).items()}
    for kind in amounts:
        if kind not in DEFAULT_AMOUNTS:
            raise InputError(f"unknown manipulation {kind!r} (valid: {', '.join(DEFAULT_AMOUNTS)})")
    paths = list(audio)
    if not paths:
        raise InputError("give at least one audio file")
    sr = model.feature_config.sample_rate
    spaces = ["full"] + list(model.dimensions)
    slices = {"full": slice(None)}
    dist = {k: {a: {s: [] for s in spaces} for a in v} for k, v in amounts.items()}
    originals = []
    jobs = [(p, k, a) for p in paths for k, v in amounts.items() for a in v]
    bar = tqdm(total=len(jobs), desc="sensitivity", unit="version", disable=not progress)
    for t, path in enumerate(paths):
        y = load_audio(path, sr=sr)
        versions = [(k, a, manipulate(y, sr, k, a, seed=t)) for k, v in amounts.items() for a in v]
        feats = [extract_features(y, config=model.feature_config)]
        feats += [extract_features(v, config=model.feature_config) for _, _, v in versions]
        embedded = model.embed_features(feats)
        slices.update(embedded[0].slices)
        vectors = [e.vectors for e in embedded]
        originals.append(vectors[0])
        for (k, a, _), v in zip(versions, vectors[1:]):
            for s in spaces:
                dist[k][a][s].append(_cosine(vectors[0][slices[s]], v[slices[s]]))
        bar.update(len(versions))
    bar.close()
    between = {}
    for s in spaces:
        pairs = [_cosine(originals[i][slices[s]], originals[j][slices[s]])
                 for i in range(len(originals)) for j in range(i + 1, len(originals))]
        between[s] = float(np.mean(pairs)) if pairs else float("nan")
    curves = {k: {s: [(a, float(np.mean(dist[k][a][s])), float(np.percentile(dist[k][a][s], 25)),
                       float(np.percentile(dist[k][a][s], 75))) for a in v] for s in spaces}
              for k, v in amounts.items()}
    matrix = {}
    for s in spaces:
        matrix[s] = {}
        for k, v in amounts.items():
            moved = [np.mean(dist[k][a][s]) for a in v if a != IDENTITY_AMOUNT[k]]
            raw = float(np.mean(moved)) if moved else float("nan")
            matrix[s][k] = raw / between[s] if np.isfinite(between[s]) and between[s] > 0 else raw
    return {"tracks": [str(p) for p in paths], "spaces": spaces, "amounts": {k: list(v) for k, v in amounts.items()},
            "curves": curves, "matrix": matrix, "between": between, "normalised": len(paths) > 1}


#: Default amounts of :func:`feature_sensitivity`: the transforms training draws from.
FEATURE_AMOUNTS = {"pitch": tuple(range(-5, 7)), "stretch": (0.8, 0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.18, 1.25)}


def feature_sensitivity(model, store_path, track_ids, *, amounts: dict | None = None, seed: int = 0) -> dict:
    """:func:`sensitivity` with the manipulations applied to the features of a store's windows.

    One window per track (a seeded random start) is pitch-shifted and time-stretched by
    :mod:`mdsim.features.augment`, the transforms training and pretraining draw from, so
    the figures answer to what the network was shown rather than to the artefacts of an
    audio phase vocoder. Returns the structure of :func:`sensitivity` (``markdown`` and
    ``plot`` read it), distances between window embeddings, with ``per_track``:
    ``{manipulation: {space: [distance over the non-identity amounts / between, per track]}}``.
    """
    from mdsim.features.augment import Plan, read_window
    from mdsim.features.store import FeatureStore

    amounts = {k: tuple(v) for k, v in (amounts or FEATURE_AMOUNTS).items()}
    for kind in amounts:
        if kind not in FEATURE_AMOUNTS:
            raise InputError(f"unknown feature manipulation {kind!r} (valid: {', '.join(FEATURE_AMOUNTS)})")
    track_ids = list(track_ids)
    if len(track_ids) < 2:
        raise InputError("feature sensitivity compares tracks: give at least two")
    seg, names = model.config.n_frames, model.config.inputs
    rng = np.random.default_rng(seed)
    plans = {"pitch": lambda a: Plan(semitones=int(a)), "stretch": lambda a: Plan(rate=float(a))}
    spaces = ["full", *model.dimensions]
    slices = {"full": slice(None), **model.slices}
    need = int(seg * max(amounts.get("stretch", (1.0,)))) + 1
    windows = {k: [] for k in amounts}
    with FeatureStore(store_path) as st:
        config = st.feature_config
        for tid in track_ids:
            frames = int(st.attrs(tid)["n_frames"])
            start = int(rng.integers(0, max(1, frames - need)))

            def read(n, a, b, t=tid):
                return st.features(t, names=n, start=a, stop=b)

            for kind, values in amounts.items():
                windows[kind] += [read_window(read, start, seg, plans[kind](a), names, track_frames=frames,
                                              config=config) for a in values]
    z = {}
    for kind, values in amounts.items():
        x = {n: np.stack([w[n] for w in windows[kind]]) for n in names}
        out = np.asarray(model.keras_model.predict(x, batch_size=64, verbose=0), np.float64)
        z[kind] = out.reshape(len(track_ids), len(values), -1)
    curves, matrix, between, per_track = {}, {s: {} for s in spaces}, {}, {}
    for s in spaces:
        kind0 = next(iter(amounts))
        ref = z[kind0][:, amounts[kind0].index(IDENTITY_AMOUNT[kind0]), slices[s]]
        u = ref / np.maximum(np.linalg.norm(ref, axis=1, keepdims=True), 1e-12)
        iu = np.triu_indices(len(u), 1)
        between[s] = float(np.mean(1.0 - (u @ u.T)[iu]))
    for kind, values in amounts.items():
        curves[kind], per_track[kind] = {}, {}
        ref = values.index(IDENTITY_AMOUNT[kind])
        for s in spaces:
            v = z[kind][:, :, slices[s]]
            v = v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)
            d = 1.0 - np.einsum("tad,td->ta", v, v[:, ref])
            curves[kind][s] = [(a, float(d[:, j].mean()), float(np.percentile(d[:, j], 25)),
                                float(np.percentile(d[:, j], 75))) for j, a in enumerate(values)]
            moved = np.delete(d, ref, axis=1).mean(axis=1) / between[s]
            per_track[kind][s] = moved.tolist()
            matrix[s][kind] = float(moved.mean())
    return {"tracks": track_ids, "spaces": spaces, "amounts": {k: list(v) for k, v in amounts.items()},
            "curves": curves, "matrix": matrix, "between": between, "normalised": True, "per_track": per_track}


def markdown(result: dict, title: str = "") -> str:
    """The subspace x manipulation sensitivity matrix as a Markdown table."""
    kinds = list(result["amounts"])
    what = ("mean cosine distance to the original over the non-identity amounts, divided by the mean "
            "distance between different tracks in the same space" if result["normalised"]
            else "mean cosine distance to the original over the non-identity amounts")
    lines = ([f"### {title}", ""] if title else []) + [
        f"{len(result['tracks'])} tracks; {what}", "",
        "| space | " + " | ".join(kinds) + " |", "|---|" + "---:|" * len(kinds)]
    for s in result["spaces"]:
        lines.append(f"| {s} | " + " | ".join(f"{result['matrix'][s][k]:.3f}" for k in kinds) + " |")
    return "\n".join(lines) + "\n"


def plot(result: dict, path, title: str = "") -> None:
    """Distance against amount, one panel per manipulation, one line (mean, IQR band) per space."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = list(result["amounts"])
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.8 * len(kinds), 3.8), squeeze=False)
    labels = {"pitch": "pitch shift (semitones)", "stretch": "time-stretch rate", "eq": "EQ gain (dB)"}
    for ax, kind in zip(axes[0], kinds):
        for s in result["spaces"]:
            rows = np.array(result["curves"][kind][s], dtype=float)
            style = "k--" if s == "full" else "-"
            ax.plot(rows[:, 0], rows[:, 1], style, label=s, lw=1.5 if s != "full" else 1.0)
            if s != "full":
                ax.fill_between(rows[:, 0], rows[:, 2], rows[:, 3], alpha=0.12)
        ax.set_xlabel(labels.get(kind, kind))
        ax.set_ylabel("cosine distance to the original")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
