"""Bad audio in a training wav.scp: a clear error naming the file, or resample/mix by config."""

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from espnet2_sonar.data.audio import AudioFileError
from espnet2_sonar.data.espnet_loader import SonarSoundReader, register_data_types

SR = 16000


@pytest.fixture()
def bad_dir(tmp_path):
    t = np.arange(SR) / SR
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    files = {
        "good": tmp_path / "good.wav",
        "corrupt": tmp_path / "corrupt.wav",
        "empty": tmp_path / "empty.wav",
        "stereo": tmp_path / "stereo.wav",
        "rate44k": tmp_path / "rate44k.wav",
        "missing": tmp_path / "missing.wav",
    }
    sf.write(files["good"], tone, SR)
    files["corrupt"].write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage that is not audio")
    files["empty"].write_bytes(b"")
    sf.write(files["stereo"], np.stack([tone, -tone], axis=1), SR)
    sf.write(files["rate44k"], (0.3 * np.sin(2 * np.pi * 440 * np.arange(44100) / 44100)).astype(np.float32), 44100)
    for name in files:
        scp = tmp_path / f"{name}.scp"
        scp.write_text(f"utt_{name} {files[name]}\n")
    return tmp_path, files


@pytest.mark.timeout(30)
@pytest.mark.parametrize("name,reason", [
    ("corrupt", "undecodable"), ("empty", "0 bytes"), ("stereo", "2 channels"), ("rate44k", "rate 44100 Hz"),
    ("missing", "no such file"),
])
def test_strict_reader_names_file_utterance_and_problem(bad_dir, name, reason):
    root, files = bad_dir
    reader = SonarSoundReader(root / f"{name}.scp")
    with pytest.raises(AudioFileError) as err:
        reader[f"utt_{name}"]
    msg = str(err.value)
    assert str(files[name]) in msg and f"utt_{name}" in msg and f"{name}.scp" in msg
    assert reason in msg.replace(str(files[name]), "")  # the problem, not just the file's name


@pytest.mark.timeout(30)
def test_resample_and_mix_types_fix_what_the_config_allows(bad_dir):
    root, _ = bad_dir
    wav = SonarSoundReader(root / "rate44k.scp", resample=True)["utt_rate44k"]
    assert wav.dtype == np.float32 and abs(len(wav) - SR) <= 1
    mono = SonarSoundReader(root / "stereo.scp", mix=True)["utt_stereo"]
    assert mono.shape == (SR,) and np.abs(mono).max() < 1e-4  # tone and its negation cancel (to 16-bit rounding)
    with pytest.raises(AudioFileError):  # corrupt stays an error whatever the type
        SonarSoundReader(root / "corrupt.scp", resample=True, mix=True)["utt_corrupt"]


def test_data_types_are_registered_with_espnet():
    from espnet2.train.dataset import DATA_TYPES

    register_data_types()
    assert "sonar_sound" in DATA_TYPES


@pytest.mark.timeout(180)
def test_training_on_a_corrupt_file_fails_with_its_name(bad_dir, tmp_path):
    """End to end through ESPnet's Trainer: the error names the file, not a tensor shape."""
    root, files = bad_dir
    scp = root / "train.scp"
    scp.write_text(f"utt_good {files['good']}\nutt_corrupt {files['corrupt']}\n")
    shape = root / "shape"
    shape.write_text(f"utt_good {SR}\nutt_corrupt {SR}\n")
    cmd = [
        sys.executable, "-m", "espnet2_sonar.bin.sonar_train", "--config", "conf/tiny/pretrain_iter1.yaml",
        "--ngpu", "0", "--max_epoch", "1", "--output_dir", str(tmp_path / "exp"), "--batch_size", "2",
        "--train_data_path_and_name_and_type", f"{scp},speech,sonar_sound",
        "--valid_data_path_and_name_and_type", f"{scp},speech,sonar_sound",
        "--train_shape_file", str(shape), "--valid_shape_file", str(shape),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=170)
    assert proc.returncode != 0
    assert "AudioFileError" in proc.stderr and str(files["corrupt"]) in proc.stderr
