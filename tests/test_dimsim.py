"""Dim-sim CSV -> high-agreement triplets, a manifest of their tracks with audio, a coverage report."""

import csv
import json

import numpy as np
import pytest

from data_prep.dimsim import main
from mdsim.config import FeatureConfig
from mdsim.evaluation.triplets import TRIPLET_COLUMNS, load_triplets, read_triplets
from mdsim.features.store import StoreWriter
from mdsim.manifest import read_manifest

from conftest import sine, write_wav

# triplet_id, anchor, song1, song2, song1_vote, song2_vote; agreement = max / sum
ROWS = [
    ("t0", "TRA", "TRB", "TRC", 9, 1),   # 0.9: kept (the threshold itself)
    ("t1", "TRA", "TRD", "TRE", 1, 9),   # 0.9: kept, song2 is the positive
    ("t2", "TRB", "TRC", "TRF", 5, 5),   # tie
    ("t3", "TRD", "TRE", "TRG", 7, 3),   # 0.7: low
    ("t4", "TRE", "TRF", "TRH", 0, 10),  # 1.0: kept
    ("t5", "TRG", "TRH", "TRA", 0, 0),   # tie (no votes)
    ("t6", "TRC", "TRA", "TRX", 19, 1),  # 0.95: kept
    ("t7", "TRH", "TRG", "TRF", 8, 2),   # 0.8: low
]
KEPT = ["t0", "t1", "t4", "t6"]
SPLIT_TRACKS = ["TRA", "TRB", "TRC", "TRD", "TRE", "TRF", "TRH", "TRX"]  # TRG is only in dropped rows
WITH_AUDIO = ["TRA", "TRB", "TRC", "TRD", "TRE", "TRG"]                 # and an unrelated TRZ


def _csv(path, rows=ROWS):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(TRIPLET_COLUMNS)
        for i, (tid, a, s1, s2, v1, v2) in enumerate(rows):
            w.writerow([tid, a, 1.5, 33075, s1, float(i), 22050 * i, s2, 0, 0, 22050, 3, 66150, v1, v2])
    return path


def _audio(tmp_path):
    folder = tmp_path / "previews"
    for i, tid in enumerate(WITH_AUDIO + ["TRZ"]):
        sub = folder / tid[2] / f"{tid}.{'flac' if tid == 'TRD' else 'wav'}"
        write_wav(sub, sine(220 + 40 * i, 0.3))
    return folder


def _run(tmp_path, out, *extra):
    return main(["--triplets", str(_csv(tmp_path / "dim-sim_raw.csv")), "--audio", str(_audio(tmp_path)),
                 "--out", str(out), *extra])


def test_split_manifest_and_report(tmp_path, capsys):
    out = tmp_path / "out"
    assert _run(tmp_path, out) == 0
    printed = capsys.readouterr().out
    assert "8 triplets read, 4 with agreement >= 0.9" in printed
    assert "5 of their 8 tracks have audio, 2 triplets with audio for all three tracks" in printed

    # the kept rows, as given and in file order
    kept = read_triplets(out / "triplets_high_agreement.csv")
    assert list(kept.triplet_id) == KEPT
    assert list(kept.song1_id) == ["TRB", "TRD", "TRF", "TRA"]
    assert list(kept.song2_vote) == [1, 9, 10, 1]
    assert list(kept.song1_start_samples) == [0, 22050, 88200, 132300]
    # and `mdsim evaluate`'s default selection reads them back oriented
    t = load_triplets(out / "triplets_high_agreement.csv")
    assert len(t) == 4 and t.selection.n_dropped == 0
    assert list(t.positive) == ["TRB", "TRE", "TRH", "TRA"] and list(t.negative) == ["TRC", "TRD", "TRF", "TRX"]

    entries = read_manifest(out / "manifest.csv")
    assert [e.track_id for e in entries] == ["TRA", "TRB", "TRC", "TRD", "TRE"]
    assert all(e.path.is_file() and e.path.stem == e.track_id for e in entries)
    assert entries[3].path.suffix == ".flac"

    report = json.loads((out / "coverage.json").read_text())
    assert report["min_agreement"] == 0.9
    assert report["triplets"] == {"total": 8, "high_agreement": 4, "dropped_tie": 2, "dropped_low_agreement": 2,
                                  "with_audio": 2,          # t0, t1
                                  "total_with_audio": 3}    # t0, t1, t3
    assert report["tracks"] == {"total": 9, "high_agreement": 8, "with_audio": 5, "total_with_audio": 6,
                                "missing_audio": ["TRF", "TRH", "TRX"]}
    assert "store" not in report
    md = (out / "coverage.md").read_text()
    assert "| triplets | 8 | 4 | 2 (50.0 %) |" in md
    assert "| tracks | 9 | 8 | 5 (62.5 %) |" in md
    assert "## Tracks of the split without audio (3)\n\n```\nTRF\nTRH\nTRX\n```" in md


def test_output_is_deterministic(tmp_path):
    assert _run(tmp_path, tmp_path / "a") == 0
    assert _run(tmp_path, tmp_path / "b") == 0
    for name in ("triplets_high_agreement.csv", "manifest.csv", "coverage.md", "coverage.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_store_coverage_and_agreement_option(tmp_path, capsys):
    store = tmp_path / "dimsim.h5"
    with StoreWriter(store, FeatureConfig()) as w:
        for tid in ("TRA", "TRB", "TRC", "TRX", "TRZ"):
            w.add_track(tid, {"mel": np.zeros((128, 10)), "cens": np.zeros((12, 10)),
                              "onset": np.zeros((1, 10))}, {"duration": 0.1})
    out = tmp_path / "out"
    assert _run(tmp_path, out, "--store", str(store), "--min-agreement", "0.8") == 0
    assert "4 of the 9 tracks are in" in capsys.readouterr().out
    report = json.loads((out / "coverage.json").read_text())
    assert list(read_triplets(out / "triplets_high_agreement.csv").triplet_id) == KEPT[:3] + ["t6", "t7"]
    assert report["min_agreement"] == 0.8
    t, k = report["triplets"], report["tracks"]
    assert (t["high_agreement"], t["dropped_low_agreement"], t["with_audio"], t["in_store"]) == (5, 1, 2, 2)
    assert (k["high_agreement"], k["in_store"]) == (9, 4)   # t7 brings TRG; TRZ is in no triplet
    assert k["missing_from_store"] == ["TRD", "TRE", "TRF", "TRG", "TRH"]
    assert "## Tracks of the split not in the store (5)" in (out / "coverage.md").read_text()


def test_clean_form(tmp_path):
    clean = [(tid, a, s1, s2, int(v1 > v2), int(v2 > v1)) for tid, a, s1, s2, v1, v2 in ROWS]
    path = _csv(tmp_path / "dim-sim_clean.csv", clean)
    out = tmp_path / "out"
    assert main(["--triplets", str(path), "--audio", str(_audio(tmp_path)), "--out", str(out)]) == 0
    report = json.loads((out / "coverage.json").read_text())
    # 0/1 votes have agreement 1; only the ties (t2, t5) go
    assert (report["triplets"]["high_agreement"], report["triplets"]["dropped_tie"]) == (6, 2)


@pytest.mark.parametrize("content", [None, b"\xff\xfe\x00garbage\x00\x81", b"id,anchor,positive\n1,a,b\n",
                                     "\n".join([",".join(TRIPLET_COLUMNS)]).encode()])
def test_bad_triplet_file_is_a_clear_error(tmp_path, capsys, content):
    path = tmp_path / "dim-sim_raw.csv"
    if content is not None:
        path.write_bytes(content)
    assert main(["--triplets", str(path), "--audio", str(_audio(tmp_path)), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dimsim: error: ") and str(path) in err and "give the Dim-sim CSV" in err
    assert not (tmp_path / "o").exists()


def test_missing_audio_folder_is_a_clear_error(tmp_path, capsys):
    path = _csv(tmp_path / "dim-sim_raw.csv")
    assert main(["--triplets", str(path), "--audio", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "nope") in err and "no such folder" in err and "named by its MSD track id" in err
