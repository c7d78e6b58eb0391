"""load_audio / write_audio: clear errors naming the file, conversion properties."""

import numpy as np
import pytest
import soundfile as sf

from espnet2_sonar.data.audio import (
    AudioFileError,
    audio_info,
    decode_audio,
    load_audio,
    resample,
    write_audio,
)


def _tone(sr, seconds=0.5, channels=1, freq=440.0):
    t = np.arange(int(sr * seconds)) / sr
    x = 0.5 * np.sin(2 * np.pi * freq * t).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


@pytest.mark.timeout(30)
def test_reads_16k_mono(tmp_path):
    p = tmp_path / "ok.wav"
    sf.write(p, _tone(16000), 16000, subtype="PCM_16")
    wav, sr = load_audio(p, on_rate_mismatch="error", on_multichannel="error")
    assert sr == 16000 and wav.dtype == np.float32 and wav.shape == (8000,)
    assert np.allclose(wav, _tone(16000), atol=1e-3)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("case", ["missing", "empty", "corrupt", "zero_length", "directory"])
def test_bad_files_name_path_and_problem(tmp_path, case):
    p = tmp_path / f"{case}.wav"
    expected = {"missing": "missing", "empty": "empty", "corrupt": "corrupt",
                "zero_length": "zero-length", "directory": "directory"}[case]
    if case == "empty":
        p.write_bytes(b"")
    elif case == "corrupt":
        p.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk" + bytes(range(256)))
    elif case == "zero_length":
        sf.write(p, np.zeros(0, dtype=np.float32), 16000)
    elif case == "directory":
        p.mkdir()
    with pytest.raises(AudioFileError) as ei:
        load_audio(p)
    assert str(p) in str(ei.value) and expected in str(ei.value)
    assert ei.value.path == str(p) and isinstance(ei.value, ValueError)


@pytest.mark.timeout(30)
def test_stereo_mixed_or_error(tmp_path):
    p = tmp_path / "stereo.wav"
    x = _tone(16000, channels=2)
    x[:, 1] = 0.0
    sf.write(p, x, 16000)
    with pytest.raises(AudioFileError, match="multichannel") as ei:
        load_audio(p, on_multichannel="error")
    assert str(p) in str(ei.value)
    wav, _ = load_audio(p, on_multichannel="mix")
    assert wav.ndim == 1 and np.allclose(wav, x[:, 0] / 2, atol=1e-3)


@pytest.mark.timeout(30)
def test_44k_resampled_or_error(tmp_path):
    p = tmp_path / "cd.flac"
    sf.write(p, _tone(44100, seconds=1.0), 44100)
    with pytest.raises(AudioFileError, match="44100") as ei:
        load_audio(p, on_rate_mismatch="error")
    assert str(p) in str(ei.value) and "rate" in str(ei.value)
    wav, sr = load_audio(p)
    assert sr == 16000 and abs(len(wav) - 16000) <= 1
    # the 440 Hz tone survives: its spectrum peak stays at 440 Hz
    spec = np.abs(np.fft.rfft(wav))
    assert abs(np.argmax(spec) * 16000 / len(wav) - 440) < 3


@pytest.mark.timeout(30)
def test_bad_options_raise():
    with pytest.raises(ValueError, match="on_rate_mismatch"):
        load_audio("x.wav", on_rate_mismatch="ignore")
    with pytest.raises(ValueError, match="on_multichannel"):
        load_audio("x.wav", on_multichannel="first")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("sr_in", [8000, 22050, 32000, 48000])
def test_resample_length(sr_in):
    x = np.random.default_rng(0).standard_normal(sr_in).astype(np.float32)
    y = resample(x, sr_in, 16000)
    assert y.dtype == np.float32 and abs(len(y) - 16000) <= 1


@pytest.mark.timeout(30)
def test_write_round_trip_and_gsm(tmp_path):
    x = _tone(16000) * 0.9
    out = tmp_path / "sub" / "x.flac"
    write_audio(out, x)
    info = audio_info(out)
    assert (info.sample_rate, info.channels, info.frames) == (16000, 1, len(x))
    y, _ = load_audio(out)
    assert np.abs(y - x).max() < 1e-3
    assert not list(out.parent.glob(".*tmp"))  # atomic: no temp file left
    # headerless GSM 6.10 (asterisk .gsm prompts) is decoded at 8 kHz
    g = tmp_path / "p.gsm"
    sf.write(g, _tone(8000), 8000, format="RAW", subtype="GSM610")
    data, sr = decode_audio(g)
    assert sr == 8000 and data.shape[1] == 1 and data.shape[0] >= 3900
