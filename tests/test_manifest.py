import re

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
    ([{"track_id": "a", "path": "a.wav", "tempo": "fast"}], r"row 2, column 'tempo': cannot read tempo 'fast'"),
    ([{"track_id": "a", "path": "a.wav", "key": "H dorian"}], r"row 2, column 'key': cannot read key 'H dorian'"),
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


# --------------------------------------------------------------------------------------
# Values checked before any work (issue 13): each was stored as is, silently replaced,
# silently dropped, or ended in a traceback.


def _write(tmp_path, text, encoding="utf-8"):
    p = tmp_path / "m.csv"
    p.write_bytes(text.encode(encoding))
    return p


@pytest.mark.parametrize("tempo", ["1e9", "-5", "0", "nan", "inf", "-inf", "19.9", "400.5"])
def test_implausible_tempo_is_an_error_naming_row_column_and_value(tmp_path, tempo):
    p = _write(tmp_path, f"track_id,path,tempo\na,a.wav,120\nb,b.wav,{tempo}\n")
    with pytest.raises(InputError, match=rf"m\.csv, row 3, column 'tempo': tempo {re.escape(f'{float(tempo):g}')} BPM "
                                         r"is not a tempo in 20\.\.400 BPM.*leave it empty to estimate"):
        read_manifest(p)


def test_empty_tempo_means_estimate_and_range_ends_are_kept(tmp_path):
    p = _write(tmp_path, "track_id,path,tempo,key\na,a.wav,,\nb,b.wav,20,C\nc,c.wav,400, \n")
    assert [e.labels["tempo"] for e in read_manifest(p)] == [None, 20.0, 400.0]
    assert [e.labels["key"] for e in read_manifest(p)] == [None, 0, None]


def test_duplicate_header_column_is_an_error(tmp_path):
    p = _write(tmp_path, "track_id,path,genre,genre\na,a.wav,rock,jazz\n")
    with pytest.raises(InputError, match=r"column 'genre' appears more than once in the header"):
        read_manifest(p)


@pytest.mark.parametrize("row,n", [("b,b.wav,rock,extra", 4), ("b", 1)])
def test_row_with_more_or_fewer_fields_than_the_header_is_an_error(tmp_path, row, n):
    p = _write(tmp_path, f"track_id,path,genre\na,a.wav,pop\n\n{row}\n")
    # row 4: the blank line 3 is skipped but counted, as an editor counts lines
    with pytest.raises(InputError, match=rf"m\.csv, row 4: {n} fields, but the header has 3 "
                                         r"\(track_id, path, genre\)"):
        read_manifest(p)


def test_latin1_manifest_is_an_error_naming_the_file_and_the_fix(tmp_path):
    p = _write(tmp_path, "track_id,path,genre\na,a.wav,pop\nb,Motörhead.wav,métal\n", encoding="latin-1")
    with pytest.raises(InputError, match=r"m\.csv is not UTF-8 text \(byte 0xf6 on line 3.*save it as UTF-8"):
        read_manifest(p)


def test_utf8_with_bom_and_non_ascii_values_are_read(tmp_path):
    p = _write(tmp_path, "\ufefftrack_id,path,genre\nb,Motörhead.wav,métal\n")
    (e,) = read_manifest(p)
    assert e.track_id == "b" and e.path.name == "Motörhead.wav" and e.labels["genre"] == ["métal"]


def test_pitch_column_is_parsed_and_a_bad_one_names_the_row(tmp_path):
    p = _write(tmp_path, "track_id,path,instrument,pitch,dynamic\na,a.wav,flute,C#4,pp\nb,b.wav,flute,62,ff\n"
                         "c,c.wav,flute,,mf\n")
    a, b, c = read_manifest(p)
    assert (a.labels["pitch"], b.labels["pitch"], "pitch" in c.labels) == (61, 62, False)
    assert a.metadata == {"dynamic": "pp"}  # pitch is a label, not metadata
    p = _write(tmp_path, "track_id,path,pitch\na,a.wav,C4\nb,b.wav,Q7\n")
    with pytest.raises(InputError, match=r"m\.csv, row 3, column 'pitch': cannot read pitch 'Q7'"):
        read_manifest(p)
