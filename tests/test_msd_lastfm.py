"""MSD Last.fm tags (both published forms) -> an mdsim manifest."""

import json
import sqlite3

from data_prep.msd_lastfm import build_manifest, group_tags, load_groups
from mdsim.manifest import read_manifest

from conftest import sine, write_wav

TRACKS = {
    "TRAAA": [["rock", "100"], ["80s", "40"], ["Female Vocalist", "60"], ["sad", "55"], ["seen live", "90"]],
    "TRBBB": [["Hip-Hop", "70"], ["00s", "80"], ["party", "20"]],
    "TRCCC": [["jazz", "100"]],  # no audio
}


def _audio(tmp_path):
    for tid in ("TRAAA", "TRBBB"):
        write_wav(tmp_path / "audio" / tid[:3] / f"{tid}.wav", sine(440, 1.0))
    return tmp_path / "audio"


def test_default_grouping_covers_the_top_50():
    groups = load_groups()
    assert len({t for t, (d, _) in groups.items() if d == "genre"}) == 28
    assert groups["female vocalist"] == ("instrument", "female vocalists")
    assert group_tags([("Mellow", 80.0), ("oldies", 10.0)], groups) == \
        {"genre": [], "mood": ["Mellow"], "instrument": [], "era": []}


def test_json_folder_and_sqlite_give_the_same_manifest(tmp_path):
    audio = _audio(tmp_path)
    jdir = tmp_path / "json"
    jdir.mkdir()
    for tid, tags in TRACKS.items():
        (jdir / f"{tid}.json").write_text(json.dumps({"track_id": tid, "tags": tags, "title": "x"}))
    db = tmp_path / "lastfm_tags.db"
    con = sqlite3.connect(db)
    con.executescript("CREATE TABLE tids (tid TEXT); CREATE TABLE tags (tag TEXT); "
                      "CREATE TABLE tid_tag (tid INT, tag INT, val FLOAT);")
    tag_ids = {}
    for i, (tid, tags) in enumerate(TRACKS.items(), start=1):
        con.execute("INSERT INTO tids VALUES (?)", (tid,))
        for tag, val in tags:
            if tag not in tag_ids:
                con.execute("INSERT INTO tags VALUES (?)", (tag,))
                tag_ids[tag] = len(tag_ids) + 1
            con.execute("INSERT INTO tid_tag VALUES (?, ?, ?)", (i, tag_ids[tag], float(val)))
    con.commit()
    con.close()
    a = build_manifest(jdir, audio, tmp_path / "a.csv")
    b = build_manifest(db, audio, tmp_path / "b.csv")
    assert a == b == {"tracks_with_tags": 3, "with_audio": 2, "written": 2, "unlabelled": 0}
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()
    entries = {e.track_id: e for e in read_manifest(tmp_path / "a.csv")}
    assert entries["TRAAA"].labels["genre"] == ["rock"] and entries["TRAAA"].labels["era"] == []
    assert entries["TRAAA"].labels["instrument"] == ["female vocalists"]
    assert entries["TRBBB"].labels["mood"] == [] and entries["TRBBB"].labels["era"] == ["00s"]


def test_bad_inputs_name_the_file_and_the_fix(tmp_path):
    import pytest

    from mdsim.errors import InputError

    audio = _audio(tmp_path)
    jdir = tmp_path / "json"
    jdir.mkdir()
    (jdir / "TRAAA.json").write_text(json.dumps({"tags": [["rock", "100"]]}))
    with pytest.raises(InputError, match=r"TRAAA\.json: no \"track_id\" key"):
        build_manifest(jdir, audio, tmp_path / "m.csv")
    (jdir / "TRAAA.json").write_text(json.dumps({"track_id": "TRAAA", "tags": ["rock"]}))
    with pytest.raises(InputError, match="list of \\[tag, weight\\] pairs"):
        build_manifest(jdir, audio, tmp_path / "m.csv")
    (jdir / "TRAAA.json").write_text(json.dumps({"track_id": "TRAAA", "tags": [["rock", "100"]]}))
    with pytest.raises(InputError, match="no such audio folder"):
        build_manifest(jdir, tmp_path / "previews_typo", tmp_path / "m.csv")
    assert not (tmp_path / "m.csv").exists()
