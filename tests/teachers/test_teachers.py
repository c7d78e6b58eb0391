"""Frame teachers (GE2E from the Resemblyzer wheel) and the log-mel-statistics floor."""

import numpy as np
import pytest
import torch

from espnet2_sonar.eval.checkpoints import load_encoder
from espnet2_sonar.eval.logmel_floor import LogMelStats
from espnet2_sonar.teachers import TEACHERS, TeacherPackageMissing, load_teacher, teacher_checkpoint
from espnet2_sonar.teachers import registry
from espnet2_sonar.teachers.ge2e import GE2ETeacher

SR = 16000


@pytest.fixture(scope="module")
def ge2e():
    return load_teacher("ge2e")


def _batch(seed=0, seconds=(2.0, 1.3)):
    g = torch.Generator().manual_seed(seed)
    n = [int(s * SR) for s in seconds]
    wavs = torch.zeros(len(n), max(n))
    for i, k in enumerate(n):
        t = torch.arange(k) / SR
        wavs[i, :k] = 0.2 * torch.sin(2 * torch.pi * (150 + 100 * i) * t) + 0.02 * torch.randn(k, generator=g)
    return wavs, torch.tensor(n)


def test_ge2e_mel_matches_librosa_and_lstm_matches_the_package_weights(ge2e):
    librosa = pytest.importorskip("librosa")
    wavs, lengths = _batch()
    out = ge2e(wavs, lengths)
    assert [tuple(x.shape) for x in out.layers] == [(2, 201, 256)] * 3
    assert out.lengths.tolist() == [201, 131] and out.frame_shift == 160
    # the package's own preprocessing: -30 dBFS RMS, librosa mel power spectrogram
    wav = wavs[1, : lengths[1]].numpy().astype(np.float64)
    wav = wav * 10 ** (-30 / 20) / np.sqrt((wav**2).mean())
    mel = librosa.feature.melspectrogram(y=wav, sr=SR, n_fft=400, hop_length=160, n_mels=40).astype(np.float32).T
    ours = ge2e.mels(wavs, lengths)[1, : out.lengths[1]].numpy()
    assert np.abs(mel - ours).max() <= 1e-4 * np.abs(mel).max()
    # one 3-layer LSTM with the file's weights gives our last layer
    state = torch.load(registry.package_dir("resemblyzer") / "pretrained.pt", map_location="cpu",
                       weights_only=True)["model_state"]
    lstm = torch.nn.LSTM(40, 256, 3, batch_first=True)
    lstm.load_state_dict({k[len("lstm."):]: v for k, v in state.items() if k.startswith("lstm.")})
    ref, _ = lstm(torch.from_numpy(mel)[None])
    torch.testing.assert_close(out.last[1, : out.lengths[1]], ref[0].detach(), atol=1e-4, rtol=1e-4)
    assert out.last[1, out.lengths[1]:].abs().max() == 0  # padding frames are zero


def test_ge2e_frames_do_not_depend_on_padding_or_batch(ge2e):
    wavs, lengths = _batch()
    both = ge2e(wavs, lengths)
    alone = ge2e(wavs[1:, : lengths[1]], lengths[1:])
    n = int(lengths[1] // 160 + 1)
    for a, b in zip(alone.layers, both.layers):
        torch.testing.assert_close(a[0, :n], b[1, :n], atol=1e-5, rtol=1e-5)
    louder = ge2e(wavs * 3.0, lengths)  # the teacher normalises loudness first
    torch.testing.assert_close(louder.last, both.last, atol=1e-4, rtol=1e-4)


def test_ge2e_is_frozen_and_stays_in_eval_mode(ge2e):
    assert not any(p.requires_grad for p in ge2e.parameters())
    ge2e.train()
    assert not ge2e.training


def test_a_missing_teacher_package_says_what_to_install(monkeypatch):
    monkeypatch.setattr(registry.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(TeacherPackageMissing, match=r"pip install --no-deps resemblyzer==0\.1\.4"):
        load_teacher("ge2e")
    with pytest.raises(ValueError, match="unknown teacher 'hubert'"):
        load_teacher("hubert")


def test_bad_ge2e_weights_are_named(tmp_path):
    with pytest.raises(ValueError, match="not a GE2E voice encoder state"):
        GE2ETeacher({"linear.weight": torch.zeros(256, 256)}, source="x.pt")
    from espnet2_sonar.teachers.ge2e import load_ge2e

    with pytest.raises(FileNotFoundError, match="pretrained.pt"):
        load_ge2e(tmp_path)


def test_reference_files_load_through_load_encoder(tmp_path):
    from espnet2_sonar.bin.reference_encoder import main

    assert main(["--kind", "teacher", "--teacher", "ge2e", "--out", str(tmp_path / "t.pt")]) == 0
    assert main(["--kind", "logmel_stats", "--out", str(tmp_path / "m.pt")]) == 0
    assert torch.load(tmp_path / "t.pt", weights_only=True) == teacher_checkpoint("ge2e")
    teacher = load_encoder(tmp_path / "t.pt")
    assert isinstance(teacher, GE2ETeacher) and set(TEACHERS) == {"ge2e"}
    wavs, lengths = _batch()
    assert len(teacher.extract_layers(wavs, lengths)) == 3
    assert teacher.patch_lengths(lengths).tolist() == [201, 131]
    floor = load_encoder(tmp_path / "m.pt")
    assert isinstance(floor, LogMelStats)
    with pytest.raises(SystemExit):
        main(["--kind", "teacher", "--out", str(tmp_path / "x.pt")])  # which teacher?


def test_logmel_stats_are_the_mean_and_std_of_the_fbank_and_ignore_padding():
    floor = LogMelStats()
    wavs, lengths = _batch(seconds=(1.0, 0.6))
    (stats,) = floor.extract_layers(wavs, lengths)
    assert stats.shape == (2, 1, 256)
    assert floor.patch_lengths(lengths).tolist() == [1, 1]
    fb = floor.frontend(wavs[1:, : lengths[1]], lengths[1:])
    x = fb.fbank[0, : fb.frame_lengths[0]]
    torch.testing.assert_close(stats[1, 0, :128], x.mean(0), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(stats[1, 0, 128:], x.std(0, unbiased=False), atol=1e-5, rtol=1e-5)
    padded = torch.nn.functional.pad(wavs, (0, 4000), value=0.7)
    torch.testing.assert_close(floor.extract_layers(padded, lengths)[0], stats)
