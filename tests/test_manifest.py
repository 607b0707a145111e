import pytest

from mdsim.errors import InputError
from mdsim.manifest import entries_from_folder, read_input, read_manifest

from conftest import write_manifest


def test_manifest_labels_and_metadata(small_corpus):
    entries = read_manifest(small_corpus)
    e = entries[0]
    assert e.track_id == "t0" and e.path == small_corpus.parent / "t0.wav"
    assert e.labels["genre"] == ["rock"] and e.labels["mood"] == ["happy", "calm"]
    assert e.labels["tempo"] == 90.0 and e.labels["key"] == 0 and e.labels["instrument"] == []
    assert e.group == "artist0" and e.metadata == {"year": "1990"}


@pytest.mark.parametrize("rows,match", [
    ([{"id": "a", "path": "a.wav"}], r"has no column 'track_id' \(columns: id, path\)"),
    ([{"track_id": "a", "path": "a.wav"}, {"track_id": "a", "path": "b.wav"}],
     r"row 3: duplicate track_id 'a' \(first in row 2\)"),
    ([{"track_id": "a", "path": "a.wav", "tempo": "fast"}], r"row 2: cannot read tempo 'fast'"),
    ([{"track_id": "a", "path": "a.wav", "key": "H dorian"}], r"row 2: cannot read key 'H dorian'"),
])
def test_bad_manifest_fails_naming_the_row(tmp_path, rows, match):
    columns = sorted({k for r in rows for k in r}, key=lambda c: ["track_id", "id", "path"].index(c)
                     if c in ("track_id", "id", "path") else 9)
    p = write_manifest(tmp_path / "m.csv", rows, columns)
    with pytest.raises(InputError, match=match):
        read_manifest(p)


def test_folder_input(audio_dir):
    entries = entries_from_folder(audio_dir)
    assert len(entries) == 8 and entries[0].track_id == "brahms"
    assert read_input(audio_dir)[0].labels["tempo"] is None


def test_missing_input(tmp_path):
    with pytest.raises(InputError, match="no such file or folder"):
        read_input(tmp_path / "nope")
    with pytest.raises(InputError, match="no audio files found"):
        read_input(tmp_path)
