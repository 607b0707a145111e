"""The deep manifold of a sound library (Humphrey), as one API.

::

    python -m mdsim.recipes.sound_library --out library/          # or any folder + manifest
    mdsim prep library/manifest.csv --out library.h5 --features cqt --annotate none
    mdsim manifold train library.h5 --out run/ --neighbourhood instrument
    mdsim prep library/manifest.csv --out lib_stft.h5 --annotate none          # or an Inception
    mdsim manifold train lib_stft.h5 --out run_mi/ --backbone multi_input     # backbone, 3-D head
    mdsim manifold evaluate run/ --out run/report.md
    mdsim manifold map run/ --out map.png --colour instrument
    mdsim manifold trajectory run/ note.wav --out adsr.png
    mdsim manifold serve run/ --audio-root library/           # the 3-D page

>>> from mdsim.manifold import load_manifold             # doctest: +SKIP
>>> m = load_manifold("run/")                            # doctest: +SKIP
>>> notes = m.notes()                                    # doctest: +SKIP
>>> m.embed_notes(notes.frames).shape                    # doctest: +SKIP
(450, 3)

Training is :func:`mdsim.training.manifold.train_manifold`; the scores are the
pure functions of :mod:`mdsim.evaluation.manifold`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mdsim.config import FeatureConfig
from mdsim.errors import InputError, ModelError
from mdsim.training.manifold import load_notes, note_windows, train_manifold  # noqa: F401  (re-exported)

#: Names of the maps the report compares, in table order.
MAPS = ("learned", "pca", "tsne")
LABELS = ("instrument", "pitch")


@dataclass
class ManifoldModel:
    """A trained manifold network with its run's settings."""

    network: object
    settings: dict
    split: dict
    run_dir: Path

    @property
    def config(self):
        """The run's :class:`~mdsim.model.manifold.ManifoldConfig`."""
        from mdsim.model.manifold import ManifoldConfig

        return ManifoldConfig.from_dict(self.settings["network"])

    @property
    def backbone(self) -> str:
        return self.settings["network"]["backbone"]

    @property
    def n_frames(self) -> int:
        return int(self.settings["network"]["n_frames"])

    @property
    def feature_config(self) -> FeatureConfig:
        return FeatureConfig.from_dict(self.settings["feature_config"])

    def notes(self, store=None):
        """The notes of ``store`` (a path or an open store; default: the run's) with the features
        and window this network reads (:func:`mdsim.training.manifold.load_notes`)."""
        return load_notes(store if store is not None else self.settings["store"], n_frames=self.n_frames,
                          backbone=self.backbone)

    def _features(self, x) -> dict:
        """``{feature: array}``; a bare array is the one input of a single-input network."""
        if isinstance(x, dict):
            return x
        names = self.config.inputs
        if len(names) != 1:
            raise InputError(f"the {self.backbone} network reads {', '.join(names)}: "
                             "pass a dict of them, not one array")
        return {names[0]: x}

    def embed_windows(self, windows) -> np.ndarray:
        """Windows -> ``float32 (B, 3)`` points: ``{feature: (B, n_bins, n_frames)}``, or for a
        single-input network (``manifold``: constant-Q) the one ``(B, n_bins, n_frames)`` array."""
        from mdsim.model.manifold import network_input

        windows = {name: np.asarray(x, np.float32) for name, x in self._features(windows).items()}
        x = network_input(self.network, windows)
        return np.asarray(self.network.predict(x, batch_size=512, verbose=0), np.float32)

    def windows(self, features) -> dict:
        """The windows of one note, ``{feature: (W, n_bins, n_frames)}``, from its
        ``{feature: (n_bins, T)}`` frames (or the one array of a single-input network).

        ``manifold``: every window start (hop 1), ``W = max(1, T - n_frames + 1)``.
        Inception backbones: the non-overlapping 3 s segments ``mdsim embed`` uses,
        one for a note shorter than 3 s. A note shorter than a window is zero-padded to one.
        """
        return note_windows(self._features(features), self.n_frames, every_start=not self.config.inception)

    def trajectory(self, C) -> np.ndarray:
        """One point per window start of a note's ``(n_bins, T)`` constant-Q frames, ``(max(1, T - n + 1), 3)``.

        Point ``t`` is the window of frames ``t .. t + n_frames - 1`` (``t / 20`` s onwards at 20 frames/s).
        The Inception backbones have none: their 3 s window holds a whole note, and sliding it
        over zero padding would trace the note leaving the window, not its attack and decay.

        Raises
        ------
        InputError
            For a ``baseline`` or ``multi_input`` run.
        """
        self._check_trajectory()
        return self.embed_windows(self.windows(C))

    def _check_trajectory(self) -> None:
        if self.config.inception:
            raise InputError(f"a {self.backbone} run reads 3 s windows, a whole note each, so it has no "
                             "trajectory; draw one with a run trained with --backbone manifold")

    def embed_notes(self, frames: list) -> np.ndarray:
        """One point per note: the mean of its windows' points (:meth:`windows`), ``(N, 3)``.

        ``frames``: :attr:`Notes.frames <mdsim.training.manifold.Notes>`, one dict (or, for a
        single-input network, one array) per note.
        """
        starts, windows = [0], []
        for f in frames:
            w = self.windows(f)
            windows.append(w)
            starts.append(starts[-1] + len(next(iter(w.values()))))
        z = self.embed_windows({name: np.concatenate([w[name] for w in windows]) for name in windows[0]})
        return np.stack([z[a:b].mean(axis=0) for a, b in zip(starts[:-1], starts[1:])])

    def embed_audio(self, path) -> np.ndarray:
        """The trajectory of an audio file (decoded and analysed with the run's feature settings);
        ``manifold`` runs only (:meth:`trajectory`)."""
        from mdsim.audio import load_audio
        from mdsim.features.spectral import extract_features

        self._check_trajectory()
        cfg = self.feature_config
        return self.trajectory(extract_features(load_audio(path, sr=cfg.sample_rate), config=cfg)["cqt"])


def load_manifold(run_dir) -> ManifoldModel:
    """A run folder written by :func:`mdsim.training.manifold.train_manifold`."""
    import keras

    # Registers the Inception backbones' custom layers (Standardize, ...) before deserialisation.
    from mdsim.model import backbones, normalization  # noqa: F401

    run_dir = Path(run_dir)
    if not (run_dir / "model.keras").exists():
        raise ModelError(f"{run_dir}: no manifold run here (no model.keras); train one with "
                         "`mdsim manifold train STORE --out RUN_DIR`")
    settings = json.loads((run_dir / "manifold.json").read_text())
    split = json.loads((run_dir / "split.json").read_text())
    network = keras.saving.load_model(run_dir / "model.keras", compile=False)
    return ManifoldModel(network, settings, split, run_dir)


def manifold_points(run_dir, store=None) -> dict:
    """Every note of the store in the run's map, for the 3-D page (:mod:`mdsim.serve.manifold`).

    Returns
    -------
    dict
        ``neighbourhood``, and per note (lists in track-id order): ``track_ids``,
        ``xyz`` (``(N, 3)`` floats), ``instrument``, ``pitch`` (MIDI, -1 none),
        ``pitch_name``, ``split`` (``"train"``, ``"held_out"`` or ``"new"``) and
        ``source_path``.
    """
    from mdsim.features.store import FeatureStore
    from mdsim.labels import pitch_name

    model = load_manifold(run_dir)
    store = store if store is not None else model.settings["store"]
    with FeatureStore(store) as st:
        notes = model.notes(st)
        sources = [st.attrs(t).get("source_path", "") for t in notes.track_ids]
    held_out, train = set(model.split["held_out"]), set(model.split["train"])
    return {"neighbourhood": model.settings["neighbourhood"], "track_ids": notes.track_ids,
            "xyz": model.embed_notes(notes.frames).tolist(), "instrument": notes.instrument,
            "pitch": notes.pitch.tolist(), "pitch_name": [pitch_name(int(p)) or "" for p in notes.pitch],
            "split": ["held_out" if t in held_out else "train" if t in train else "new" for t in notes.track_ids],
            "source_path": sources}


def evaluate_manifold(run_dir, store=None, *, k: int = 5, precision_k: int = 10, seed: int = 0,
                      analogy_queries: int = 500) -> dict:
    """Score a run's map of its held-out notes against PCA-3D and t-SNE-3D of the inputs.

    The inputs are the notes' mean frames (:meth:`Notes.mean_inputs
    <mdsim.training.manifold.Notes.mean_inputs>`): the constant-Q frame, or the
    concatenated mel, CENS and tempogram means of the features an Inception run reads.

    Parameters
    ----------
    run_dir : a manifold run folder
    store : the run's kind of store, constant-Q or STFT (default: the one the run was trained on)
    k, precision_k : int
        Neighbours of the k-NN classifier; depth of ranked retrieval.
    seed, analogy_queries : int
        Seed of t-SNE and of the analogy draws; how many analogies to ask.

    Returns
    -------
    dict
        Stable keys: ``neighbourhood``, ``n_train``, ``n_held_out``, ``k``,
        ``precision_k``, ``chance`` (``{label: accuracy}``), ``maps``
        (``{map: {label: {"knn", "precision"}}}`` for ``learned``, ``pca``,
        ``tsne``), ``analogy`` (``{map: {"queries", "instrument", "pitch", "both"}}``).
    """
    from mdsim.evaluation.manifold import analogies, chance_accuracy, map_scores, pca_map, tsne_map

    model = load_manifold(run_dir)
    store = store if store is not None else model.settings["store"]
    notes = model.notes(store)
    pos = {t: i for i, t in enumerate(notes.track_ids)}
    missing = [t for t in model.split["train"] + model.split["held_out"] if t not in pos]
    if missing:
        raise InputError(f"{store} lacks {len(missing)} notes of the run's split (e.g. {missing[0]!r}); "
                         "evaluate on the store the run was trained on")
    tr = [pos[t] for t in model.split["train"]]
    te = [pos[t] for t in model.split["held_out"]]
    inputs = notes.mean_inputs()
    learned = model.embed_notes(notes.frames)
    pca_tr, pca_te = pca_map(inputs[tr], inputs[te])
    tsne = tsne_map(inputs, seed=seed)
    labels = {"instrument": np.array(notes.instrument, dtype=object), "pitch": notes.pitch}
    train_labels = {name: v[tr] for name, v in labels.items()}
    test_labels = {name: v[te] for name, v in labels.items()}
    coords = {"learned": (learned[tr], learned[te]), "pca": (pca_tr, pca_te), "tsne": (tsne[tr], tsne[te])}
    maps = {name: map_scores(a, b, train_labels, test_labels, k=k, precision_k=precision_k)
            for name, (a, b) in coords.items()}
    pca_all = np.zeros((len(notes), 3))
    pca_all[tr], pca_all[te] = pca_tr, pca_te
    analogy = {name: analogies(z, labels["instrument"], labels["pitch"], n=analogy_queries, seed=seed)
               for name, z in (("learned", learned), ("pca", pca_all), ("tsne", tsne))}
    return {"neighbourhood": model.settings["neighbourhood"], "n_train": len(tr), "n_held_out": len(te),
            "k": k, "precision_k": precision_k,
            "chance": {name: chance_accuracy(train_labels[name], test_labels[name]) for name in LABELS},
            "maps": maps, "analogy": analogy}


def report_rows(results: list[dict]) -> str:
    """A Markdown table of several runs' results (one block of three rows per neighbourhood)."""
    k, pk = results[0]["k"], results[0]["precision_k"]
    lines = [f"| neighbourhood | map | instrument {k}-NN | pitch {k}-NN | instrument P@{pk} | pitch P@{pk} "
             "| analogy: instrument | analogy: pitch |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        for name in MAPS:
            m, a = r["maps"][name], r["analogy"][name]
            label = {"learned": "**learned 3-D**", "pca": "PCA 3-D", "tsne": "t-SNE 3-D"}[name]
            lines.append(f"| {r['neighbourhood']} | {label} | {m['instrument']['knn']:.3f} | {m['pitch']['knn']:.3f} "
                         f"| {m['instrument']['precision']:.3f} | {m['pitch']['precision']:.3f} "
                         f"| {a['instrument']:.3f} | {a['pitch']:.3f} |")
    c = results[0]["chance"]
    lines.append("")
    lines.append(f"Held-out notes: {results[0]['n_held_out']} (trained on {results[0]['n_train']}); "
                 f"chance (most common training label): instrument {c['instrument']:.3f}, pitch {c['pitch']:.3f}.")
    return "\n".join(lines) + "\n"


def write_report(results: dict | list, path) -> Path:
    """Write ``report_rows`` to ``path`` (Markdown) and the results beside it as ``.json``."""
    results = results if isinstance(results, list) else [results]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# Manifold evaluation\n\n" + report_rows(results))
    path.with_suffix(".json").write_text(json.dumps(results, indent=1, sort_keys=True))
    return path
