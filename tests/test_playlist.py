"""mdsim.search.playlist: continuing from seeds and walking between tracks, against a
brute-force loop over the definitions, and the M3U8 / JSON files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_search import block_normalised, make_labels, make_vectors, oracle

from mdsim.errors import InputError
from mdsim.labels import DIMENSIONS, key_harmonic
from mdsim.search import Catalog, Filters
from mdsim.search.playlist import continue_from, walk, write_json, write_m3u8

WEIGHTS = {"mood": 1.0, "genre": 0.5, "tempo": 0.2}


@pytest.fixture
def data(rng):
    ids = [f"t{i:03d}" for i in range(150)]
    x = make_vectors(rng, len(ids))
    labels, groups = make_labels(rng, ids)
    sources = {t: f"/music/{groups[t]}/{t}.ogg" for t in ids[1:]}  # t000 has no audio path
    return ids, x, labels, groups, Catalog(ids, x, dimensions=DIMENSIONS, labels=labels, groups=groups,
                                           sources=sources)


def brute_next(x, ids, labels, groups, query, played, filters, previous):
    """The best track for the float64 ``query`` by the oracle that is not played and passes
    the filters, the key rule against the ``previous`` track."""
    scores = oracle(x, query, WEIGHTS)
    unit = block_normalised(x)
    for i in np.argsort(-scores, kind="stable"):
        t = ids[i]
        if t in played:
            continue
        if filters.harmonic and (labels[t]["key"] is None or not key_harmonic(labels[t]["key"],
                                                                           labels[previous]["key"])):
            continue
        if filters.max_per_group and sum(groups[p] == groups[t] for p in played) >= filters.max_per_group:
            continue
        if filters.dedupe is not None and any(unit[i] @ unit[ids.index(p)] / len(DIMENSIONS) >= filters.dedupe
                                              for p in played):
            continue
        return t
    return None


PLAYLIST_FILTERS = [Filters(), Filters(max_per_group=2), Filters(dedupe=0.2), Filters(harmonic=True)]


@pytest.mark.parametrize("filters", PLAYLIST_FILTERS, ids=["none", "max2", "dedupe", "harmonic"])
@pytest.mark.parametrize("seeds", [["t001"], ["t001", "t002", "t003"]], ids=["one-seed", "three-seeds"])
def test_continue_matches_brute_force(data, filters, seeds):
    ids, x, labels, groups, cat = data
    got = continue_from(cat, seeds, n=12, weights=WEIGHTS, filters=filters)
    played = list(seeds)
    query = block_normalised(x[[ids.index(s) for s in seeds]]).mean(axis=0)
    while len(played) < len(seeds) + 12:
        t = brute_next(x, ids, labels, groups, query, played, filters, played[-1] if len(played) > len(seeds)
                       else seeds[0])
        if t is None:
            break
        played.append(t)
        query = x[ids.index(t)]
    assert got.track_ids == played and len(set(played)) == len(played)
    assert [t["role"] for t in got.tracks] == ["seed"] * len(seeds) + ["next"] * (len(played) - len(seeds))


@pytest.mark.parametrize("filters", PLAYLIST_FILTERS, ids=["none", "max2", "dedupe", "harmonic"])
def test_walk_matches_brute_force(data, filters):
    ids, x, labels, groups, cat = data
    got = walk(cat, "t004", "t100", n=8, weights=WEIGHTS, filters=filters)
    a, b = block_normalised(x[[4, 100]])
    played = ["t004"]
    for i in range(1, 9):
        t = brute_next(x, ids, labels, groups, (1 - i / 9) * a + i / 9 * b, played + ["t100"], filters, played[-1])
        played.append(t)
    assert got.track_ids == played + ["t100"]
    assert got.tracks[0]["role"] == "start" and got.tracks[-1]["role"] == "end"
    # the walk moves from A towards B: the first step is nearer A than the last one is
    first, last = (oracle(x[[4, ids.index(t)]], x[4], WEIGHTS)[1] for t in (played[1], played[-1]))
    assert first > last


def test_playlist_stops_when_the_filters_run_out(data):
    ids, x, labels, groups, cat = data
    got = continue_from(cat, "t001", n=50, filters=Filters(max_per_group=1))
    assert len(got.track_ids) == len(set(groups.values()))  # one per artist, then nothing is left


def test_m3u8_and_json(data, tmp_path):
    ids, x, labels, groups, cat = data
    playlist = continue_from(cat, ["t000", "t001"], n=3)
    path = write_m3u8(tmp_path / "lists" / "mix.m3u8", playlist)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "#EXTM3U"
    assert lines[1] == f"# {groups['t000']} - t000: no audio path in the catalog"
    for t, (info, entry) in zip(playlist.track_ids[1:], zip(lines[2::2], lines[3::2])):
        assert info == f"#EXTINF:-1,{groups[t]} - {t}"
        assert entry == f"../../../music/{groups[t]}/{t}.ogg".replace("../../../", "../" * len(
            (tmp_path / "lists").resolve().parts[1:]))
    assert len(lines) == 1 + 1 + 2 * 4
    back = json.loads(write_json(tmp_path / "mix.json", playlist).read_text())
    assert [t["track_id"] for t in back["tracks"]] == playlist.track_ids
    assert back["mode"] == "continue" and back["tracks"][0]["score"] is None
    assert back["tracks"][2]["score"] == pytest.approx(cat.search(["t000", "t001"], k=1)[0].score)


def test_m3u8_of_a_moved_catalog_names_the_files_under_the_new_root(data, tmp_path):
    from mdsim.cli import main

    ids, x, labels, groups, cat = data  # the catalog says /music/GROUP/ID.ogg; the audio now lives elsewhere
    cat.save(tmp_path / "cat")
    playlist = continue_from(cat, ["t001"], n=3)
    for t in playlist.track_ids:
        (tmp_path / "new" / groups[t]).mkdir(parents=True, exist_ok=True)
        (tmp_path / "new" / groups[t] / f"{t}.ogg").write_bytes(b"OggS")
    assert main(["playlist", str(tmp_path / "cat"), "--seed", "t001", "-n", "3", "--audio-root",
                 str(tmp_path / "new"), "--out", str(tmp_path / "mix.m3u8")]) == 0
    entries = (tmp_path / "mix.m3u8").read_text().splitlines()[2::2]
    assert entries == [f"new/{groups[t]}/{t}.ogg" for t in playlist.track_ids]


def test_playlist_errors_name_the_bad_value(data):
    cat = data[-1]
    with pytest.raises(InputError, match="no track 'nope'"):
        continue_from(cat, ["nope"], n=3)
    with pytest.raises(InputError, match="at least one seed"):
        continue_from(cat, [], n=3)
    with pytest.raises(InputError, match="both 't001'"):
        walk(cat, "t001", "t001", n=3)
    with pytest.raises(InputError, match="whole number"):
        walk(cat, "t001", "t002", n=-1)


def test_playlist_command_writes_what_the_library_returns(data, tmp_path, capsys):
    from mdsim.cli import main

    ids, x, labels, groups, cat = data
    cat.save(tmp_path / "cat")
    out = [str(tmp_path / "mix.m3u8"), str(tmp_path / "mix.json")]
    assert main(["playlist", str(tmp_path / "cat"), "--seed", "t001", "t002", "-n", "6", "--dims", "mood=1,genre=0.5",
                 "--max-per-group", "2", "--out", *out]) == 0
    want = continue_from(cat, ["t001", "t002"], n=6, weights={"mood": 1, "genre": 0.5},
                         filters=Filters(max_per_group=2))
    printed = capsys.readouterr().out.splitlines()
    assert [line.split()[2] for line in printed[:8]] == want.track_ids and "wrote" in printed[-1]
    assert [t["track_id"] for t in json.loads((tmp_path / "mix.json").read_text())["tracks"]] == want.track_ids
    assert (tmp_path / "mix.m3u8").read_text() == write_m3u8(tmp_path / "again.m3u8", want).read_text()
    assert main(["playlist", str(tmp_path / "cat"), "--from", "t004", "--to", "t100", "-n", "3",
                 "--out", str(tmp_path / "walk.json")]) == 0
    back = json.loads((tmp_path / "walk.json").read_text())
    assert [t["track_id"] for t in back["tracks"]] == walk(cat, "t004", "t100", n=3).track_ids
    capsys.readouterr()
    assert main(["playlist", str(tmp_path / "cat"), "--from", "t004", "-n", "3"]) == 2
    assert "both --from and --to" in capsys.readouterr().err
    assert main(["playlist", str(tmp_path / "cat"), "--seed", "t004", "--out", "mix.txt"]) == 2
    assert "mix.txt: name it .m3u8 or .json" in capsys.readouterr().err
