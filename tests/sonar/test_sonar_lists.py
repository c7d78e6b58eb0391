"""Training-list maker and deterministic cropping (recipe stage 3 helpers)."""

import numpy as np
import pytest

from espnet2_sonar.bin.make_train_lists import main as make_lists
from espnet2_sonar.data.crop import DeterministicCrop
from espnet2_sonar.sampling.mixing import read_kaldi_map


def _kaldi_dir(path, ids, dur=2.0):
    path.mkdir(parents=True)
    (path / "wav.scp").write_text("".join(f"{u} /audio/{u}.flac\n" for u in ids))
    (path / "utt2dur").write_text("".join(f"{u} {dur}\n" for u in ids))
    return path


@pytest.mark.timeout(30)
def test_lists_split_pool_and_mix_replay(tmp_path):
    pool = _kaldi_dir(tmp_path / "pool", [f"new{i:03d}" for i in range(200)])
    replay = _kaldi_dir(tmp_path / "replay", [f"old{i:03d}" for i in range(50)], dur=1.5)
    out = tmp_path / "lists"
    assert make_lists(["--pool_dir", str(pool), "--out_dir", str(out), "--replay_scp", str(replay / "wav.scp"),
                       "--valid_share", "0.1"]) == 0
    train, valid = read_kaldi_map(out / "train" / "wav.scp"), read_kaldi_map(out / "valid" / "wav.scp")
    assert not set(train) & set(valid)
    assert all(k.startswith("new") for k in valid)
    assert 5 <= len(valid) <= 40  # ~10% of 200, by hash
    flags = read_kaldi_map(out / "train" / "is_replay")
    assert sorted(k for k, v in flags.items() if v == "1") == sorted(read_kaldi_map(replay / "wav.scp"))
    assert set(flags) == set(train)
    shapes = read_kaldi_map(out / "train" / "speech_shape")
    assert shapes["old000"] == "24000" and shapes[next(k for k in train if k.startswith("new"))] == "32000"
    # the same call again gives the same split (hash based, no randomness)
    out2 = tmp_path / "lists2"
    make_lists(["--pool_dir", str(pool), "--out_dir", str(out2), "--replay_scp", str(replay / "wav.scp"),
                "--valid_share", "0.1"])
    assert (out / "train" / "wav.scp").read_text() == (out2 / "train" / "wav.scp").read_text()


@pytest.mark.timeout(30)
def test_lists_without_replay_have_no_replay_items(tmp_path):
    pool = _kaldi_dir(tmp_path / "pool", [f"u{i}" for i in range(30)])
    make_lists(["--pool_dir", str(pool), "--out_dir", str(tmp_path / "o")])
    flags = read_kaldi_map(tmp_path / "o" / "train" / "is_replay")
    assert set(flags.values()) == {"0"}


@pytest.mark.timeout(30)
def test_lists_missing_utt2dur_names_the_file(tmp_path):
    pool = _kaldi_dir(tmp_path / "pool", ["a", "b", "c"])
    (pool / "utt2dur").unlink()
    with pytest.raises(FileNotFoundError, match="utt2dur"):
        make_lists(["--pool_dir", str(pool), "--out_dir", str(tmp_path / "o")])


def test_crop_is_deterministic_per_utterance_and_bounded():
    crop = DeterministicCrop(max_samples=16000, seed=3)
    wav = np.arange(50000, dtype=np.float32)
    a = crop("utt1", {"speech": wav})["speech"]
    b = crop("utt1", {"speech": wav})["speech"]
    c = crop("utt2", {"speech": wav})["speech"]
    assert a.shape == (16000,) and np.array_equal(a, b)
    assert np.array_equal(a, wav[int(a[0]) : int(a[0]) + 16000])  # a contiguous window
    assert not np.array_equal(a, c)  # another utterance, another window (overwhelmingly likely)
    short = np.ones(100, dtype=np.float32)
    assert np.array_equal(crop("u", {"speech": short})["speech"], short)
    assert crop("u", {"speech": short, "is_replay": np.array([1])})["is_replay"].tolist() == [1]
