"""Locality and sensitivity analyses: brute-force oracles and planted structure."""

import json

import numpy as np
import pytest

from mdsim.analysis import label_locality, locality, nearest_neighbours
from mdsim.analysis.locality import octave_distance, random_neighbours
from mdsim.evaluation import EmbeddingSet, write_embeddings


def test_nearest_neighbours_match_a_brute_force_loop(rng):
    X = rng.normal(size=(37, 5)).astype(np.float32)
    got = nearest_neighbours(X, 4, chunk=8)                     # several chunks
    for i in range(len(X)):
        d = [(1 - X[i] @ X[j] / np.linalg.norm(X[i]) / np.linalg.norm(X[j]), j) for j in range(len(X)) if j != i]
        assert [j for _, j in sorted(d)[:4]] == got[i].tolist()


def test_random_neighbours_are_distinct_others():
    nb = random_neighbours(20, 5, seed=1)
    for i, row in enumerate(nb):
        assert i not in row and len(set(row)) == 5
    np.testing.assert_array_equal(nb, random_neighbours(20, 5, seed=1))


def _labels(rng, n):
    out = []
    for i in range(n):
        out.append({"genre": [str(rng.integers(3))] if i % 5 else [],
                    "mood": [str(rng.integers(2)), "x"] if i % 3 == 0 else [str(rng.integers(2))],
                    "instrument": [], "era": [str(rng.integers(4))],
                    "tempo": None if i % 7 == 0 else float(rng.uniform(60, 180)),
                    "key": None if i % 6 == 0 else int(rng.integers(24))})
    return out


def test_label_locality_matches_a_brute_force_computation(rng):
    labels = _labels(rng, 30)
    nb = random_neighbours(30, 6, seed=2)
    got = label_locality(nb, labels)
    sq, same, tonic, nk = [], 0, 0, 0
    tags = {d: [0, 0] for d in ("genre", "mood", "era")}
    for i, lab in enumerate(labels):
        for j in nb[i]:
            other = labels[j]
            if lab["tempo"] is not None and other["tempo"] is not None:
                r = np.log2(other["tempo"] / lab["tempo"])
                sq.append(min(abs(r - o) for o in range(-2, 3)) ** 2)
            if lab["key"] is not None and other["key"] is not None:
                nk += 1
                same += lab["key"] == other["key"]
                tonic += lab["key"] % 12 == other["key"] % 12
            for d in tags:
                if lab[d] and other[d]:
                    tags[d][1] += 1
                    tags[d][0] += bool(set(lab[d]) & set(other[d]))
    assert got["tempo"] == pytest.approx(100 * (2 ** np.sqrt(np.mean(sq)) - 1))
    assert got["key"] == pytest.approx(same / nk) and got["tonic"] == pytest.approx(tonic / nk)
    for d, (h, t) in tags.items():
        assert got[d] == pytest.approx(h / t)
    assert np.isnan(got["instrument"])


def test_octave_distance_folds_octaves_only():
    assert octave_distance(100, 200) == pytest.approx(0) and octave_distance(100, 50) == pytest.approx(0)
    assert octave_distance(100, 150) == pytest.approx(np.log2(4 / 3))     # nearer 200 than 100
    assert octave_distance(100, 800) == pytest.approx(1.0)                 # 3 octaves: 1 left after 2


def _planted(rng, n=120):
    """A tempo subspace that encodes the tempo, a key subspace the key, a genre one the genre."""
    labels, rows = {}, []
    for i in range(n):
        t, k, g = float(rng.uniform(60, 180)), int(rng.integers(24)), int(rng.integers(4))
        labels[f"t{i}"] = {"tempo": t, "key": k, "genre": [f"g{g}"], "mood": [], "instrument": [], "era": []}
        a = 2 * np.pi * np.log2(t)                    # octave-periodic, as the tempo rule is
        key = np.eye(24)[k] + 0.05 * rng.normal(size=24)
        genre = np.eye(4)[g] + 0.3 * rng.normal(size=4)
        rows.append(np.concatenate([[np.cos(a), np.sin(a)], key, genre]))
    emb = EmbeddingSet(np.array(list(labels)), np.array(rows, dtype=np.float32),
                       dimensions=("tempo", "key", "genre"), slices=((0, 2), (2, 26), (26, 30)))
    return emb, labels


def test_locality_finds_what_each_planted_subspace_encodes(rng):
    emb, labels = _planted(rng)
    r = locality(emb, labels, k=3)      # about 5 tracks per key
    lift = r["lift"]
    assert lift["tempo"]["tempo"] > 5 and lift["key"]["tempo"] < 1.5
    assert r["spaces"]["key"]["key"] > 0.9 and r["spaces"]["tempo"]["key"] < 0.2
    assert lift["genre"]["genre"] > 2 and lift["tempo"]["genre"] < 1.5
    assert r["random"]["key"] < 0.15


def test_the_locality_command_writes_its_table_and_heat_map(rng, tmp_path, capsys):
    from mdsim.cli import main
    from mdsim.labels import key_name

    emb, labels = _planted(rng, 40)
    path = tmp_path / "emb.h5"
    write_embeddings(path, emb.track_ids, emb.embeddings, dimensions=emb.dimensions, slices=emb.slices)
    lines = ["track_id,path,genre,tempo,key"] + [f"{t},{t}.wav,{lab['genre'][0]},{lab['tempo']:.2f},"
                                                 f"{key_name(lab['key'])}" for t, lab in labels.items()]
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    assert main(["analyze", "locality", str(path), "--labels", str(tmp_path / "m.csv"), "--k", "3",
                 "--out", str(tmp_path / "loc")]) == 0
    out = capsys.readouterr().out
    assert "| tempo |" in out and "| random |" in out
    data = json.loads((tmp_path / "loc" / "locality.json").read_text())
    assert data["lift"]["key"]["key"] > 3
    assert (tmp_path / "loc" / "locality.png").stat().st_size > 1000
    assert main(["analyze", "locality", str(path), "--labels", str(path)]) == 2


class _ChromaTempoModel:
    """A model whose key subspace is the mean CENS and tempo subspace the mean tempogram:
    what a perfectly disentangled network would hold."""

    dimensions = ("tempo", "key")

    def __init__(self):
        from mdsim.config import FeatureConfig

        self.feature_config = FeatureConfig()

    def embed_features(self, feats):
        from mdsim.api import Embedding

        out = []
        for f in feats:
            tempo = f["tempogram"][20:200].mean(axis=1)
            key = f["cens"].mean(axis=1)
            v = np.concatenate([tempo / np.linalg.norm(tempo), key / np.linalg.norm(key)]).astype(np.float32)
            out.append(Embedding(v, self.dimensions, {"tempo": slice(0, 180), "key": slice(180, 192)}))
        return out


def test_sensitivity_sees_a_disentangled_model_move_where_it_should(tmp_path):
    from conftest import write_wav

    from mdsim import synth
    from mdsim.analysis import sensitivity

    paths = []
    for i, (tempo, key) in enumerate(((90.0, "C major"), (130.0, "F# minor"))):
        y = synth.generate_track(i, tempo=tempo, key=key, genre="backbeat", mood="happy", instrument="organ",
                                 era="digital", duration=8)
        paths.append(write_wav(tmp_path / f"s{i}.wav", y))
    r = sensitivity(_ChromaTempoModel(), paths, amounts={"pitch": (-3, 0, 4), "stretch": (0.8, 1.0, 1.25)},
                    progress=False)
    m = r["matrix"]
    assert m["key"]["pitch"] > 2 * m["key"]["stretch"]
    # the phase vocoder of the pitch shifter softens onsets, which the tempogram sees a little
    assert m["tempo"]["stretch"] > 1.3 * m["tempo"]["pitch"]
    for kind in ("pitch", "stretch"):
        identity = [row for row in r["curves"][kind]["key"] if row[0] in (0, 1.0)]
        assert identity[0][1] == pytest.approx(0.0, abs=1e-6)


def test_the_sensitivity_command_embeds_manipulated_audio_with_a_saved_model(tmp_path, capsys):
    from conftest import clicks, sine, write_wav

    from mdsim.cli import main
    from mdsim.model import ModelConfig, build_model, save_model

    model = tmp_path / "tiny.keras"
    save_model(build_model(ModelConfig(dimensions=("tempo", "key"), embedding_size=16, width=0.25)), model)
    paths = [str(write_wav(tmp_path / f"a{i}.wav", clicks(bpm=90 + 30 * i, seconds=4.0) + 0.3 * sine(220 + 110 * i,
                                                                                                     seconds=4.0)))
             for i in range(2)]
    assert main(["analyze", "sensitivity", "--model", str(model), *paths, "--pitch", "0", "2", "--stretch", "1.0",
                 "1.2", "--eq", "0", "6", "--out", str(tmp_path / "s"), "--quiet"]) == 0
    assert "| tempo |" in capsys.readouterr().out
    data = json.loads((tmp_path / "s" / "sensitivity.json").read_text())
    assert data["curves"]["pitch"]["key"][0][0] == 0                    # the identity does not move
    assert data["curves"]["pitch"]["key"][0][1] == pytest.approx(0.0, abs=1e-6)
    assert data["curves"]["pitch"]["key"][1][1] > 0                    # a shift does
    assert (tmp_path / "s" / "sensitivity.png").stat().st_size > 1000
    assert main(["analyze", "sensitivity", "--model", str(model), str(tmp_path / "missing.wav")]) == 2
