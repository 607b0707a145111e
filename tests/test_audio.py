import numpy as np
import pytest

from mdsim.audio import find_audio, load_audio, prepare_signal, segment_starts
from mdsim.errors import AudioError

from conftest import RECORDINGS, SR, sine, write_wav


def test_bundled_recordings_decode(audio_dir):
    assert [p.stem for p in find_audio(audio_dir)] == sorted(RECORDINGS)
    y = load_audio(audio_dir / "trumpet.ogg")
    assert y.dtype == np.float32 and y.ndim == 1 and abs(len(y) / SR - 5.3) < 0.1


def test_any_rate_and_channels_become_22050_mono(tmp_path):
    stereo = np.stack([sine(440, 2.0, sr=44100), sine(440, 2.0, sr=44100)], axis=1)
    p = tmp_path / "s.wav"
    import soundfile as sf

    sf.write(p, stereo, 44100)
    y = load_audio(p)
    assert y.ndim == 1 and abs(len(y) - 2 * SR) <= 2


@pytest.mark.parametrize("content,match", [
    (b"", "empty file"),
    (b"this is a text file, not audio", "cannot decode audio"),
])
def test_bad_files_name_the_file(tmp_path, content, match):
    p = tmp_path / "bad.mp3"
    p.write_bytes(content)
    with pytest.raises(AudioError, match=match) as e:
        load_audio(p)
    assert "bad.mp3" in str(e.value)


def test_silence_and_non_finite_are_rejected(tmp_path):
    with pytest.raises(AudioError, match="digital silence"):
        load_audio(write_wav(tmp_path / "silence.wav", np.zeros(SR * 2, dtype=np.float32)))
    y = sine(seconds=1.0)
    y[10] = np.nan
    with pytest.raises(AudioError, match="NaN"):
        prepare_signal(y, SR, name="x")


def test_missing_file():
    with pytest.raises(AudioError, match="no such file"):
        load_audio("/nonexistent/file.wav")


def test_segment_starts():
    assert list(segment_starts(1000, 259)) == [0, 259, 518]
    assert list(segment_starts(100, 259)) == [0]
