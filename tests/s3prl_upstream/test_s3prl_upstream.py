"""The sonar s3prl upstream, the checkpoint loader, and s3prl features as the frozen probe's input."""

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from espnet2_sonar.beats.config import BeatsConfig
from espnet2_sonar.beats.encoder import BeatsEncoder

SR = 16000


def _tiny_encoder(seed: int = 0) -> BeatsEncoder:
    """With seed 0: the weights of conftest's ``tiny_encoder_ckpt`` file."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return BeatsEncoder(BeatsConfig.named("tiny")).eval()


@pytest.fixture(scope="module")
def upstream(tiny_encoder_ckpt):
    import espnet2_sonar.s3prl_upstream  # noqa: F401
    from s3prl.nn import S3PRLUpstream

    return S3PRLUpstream("sonar_local", path_or_url=str(tiny_encoder_ckpt)).eval()


def _waves(lengths, seed=0):
    gen = torch.Generator().manual_seed(seed)
    wavs = torch.zeros(len(lengths), max(lengths))
    for i, n in enumerate(lengths):
        wavs[i, :n] = 0.1 * torch.randn(n, generator=gen)
    return wavs, torch.tensor(lengths)


@pytest.mark.timeout(120)
def test_registered_in_s3prl_hub():
    import espnet2_sonar.s3prl_upstream  # noqa: F401
    from s3prl import hub
    from s3prl.nn import S3PRLUpstream

    for name in ("sonar_local", "sonar_url", "sonar_custom"):
        assert callable(getattr(hub, name))
        assert name in S3PRLUpstream.available_names()


@pytest.mark.timeout(120)
def test_hidden_states_padded_batch_equals_alone(upstream):
    cfg = BeatsConfig.named("tiny")
    lengths = [16000, 9000, 5121, 100]
    wavs, lens = _waves(lengths)
    with torch.no_grad():
        hs, hl = upstream(wavs, lens)
    assert upstream.num_layers == len(hs) == cfg.encoder_layers + 1
    assert upstream.downsample_rates == [2560] * len(hs)
    for h, l in zip(hs, hl):
        assert h.shape == (4, math.ceil(16000 / 2560), cfg.encoder_embed_dim)
        assert l.tolist() == [math.ceil(n / 2560) for n in lengths]
    for i, n in enumerate(lengths):
        with torch.no_grad():
            alone, alone_len = upstream(wavs[i : i + 1, :n], lens[i : i + 1])
        k = int(alone_len[0][0])
        assert k == int(hl[0][i])
        for a, b in zip(hs, alone):
            torch.testing.assert_close(a[i, :k], b[0, :k], atol=1e-5, rtol=1e-5)


@pytest.mark.timeout(120)
def test_frames_are_frequency_means_of_encoder_patches(upstream, tiny_encoder_ckpt):
    """Valid frames are the mean of the 8 frequency patches; frames past them repeat the last."""
    encoder = upstream.upstream.encoder
    wavs, lens = _waves([16000])
    with torch.no_grad():
        layers = encoder.extract_layers(wavs, lens)
        hs, _ = upstream(wavs, lens)
    steps = int(encoder.patch_lengths(lens)[0]) // 8
    assert steps == 6 and hs[0].shape[1] == 7
    for patches, frames in zip(layers, hs):
        expected = patches[0].view(steps, 8, -1).mean(dim=1)
        torch.testing.assert_close(frames[0, :steps], expected, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(frames[0, steps], expected[-1])


@pytest.mark.timeout(120)
def test_very_short_input_gives_one_frame(upstream):
    wavs, lens = _waves([50])
    with torch.no_grad():
        hs, hl = upstream(wavs, lens)
    assert all(h.shape[:2] == (1, 1) and torch.isfinite(h).all() for h in hs)
    assert all(l.tolist() == [1] for l in hl)


@pytest.mark.timeout(120)
def test_featurizer_weighted_sum(upstream):
    from s3prl.nn import Featurizer

    featurizer = Featurizer(upstream)
    wavs, lens = _waves([16000, 4000])
    with torch.no_grad():
        hs, hl = upstream(wavs, lens)
    out, out_len = featurizer(hs, hl)
    assert out.shape == hs[0].shape and out_len.tolist() == hl[0].tolist()
    torch.testing.assert_close(out, torch.stack(hs).mean(dim=0))  # zero-initialised weights


@pytest.mark.timeout(120)
def test_sonar_url_downloads_once_to_the_torch_hub_cache(tiny_encoder_ckpt, tmp_path, monkeypatch):
    from espnet2_sonar.s3prl_upstream import hubconf

    calls = []

    def fake_download(url, dst, progress=True):
        calls.append(url)
        Path(dst).write_bytes(Path(tiny_encoder_ckpt).read_bytes())

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    url = "https://example.org/models/tiny.pt"
    first = hubconf.sonar_url(url)
    second = hubconf.sonar_custom(url)
    assert calls == [url]
    assert hubconf._url_cache_path(url).is_file()
    assert str(hubconf._url_cache_path(url)).startswith(str(tmp_path))
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="http"):
        hubconf.sonar_url(str(tiny_encoder_ckpt))


@pytest.mark.timeout(120)
def test_load_encoder_espnet_layout_matches_official(tmp_path, tiny_encoder_ckpt):
    from espnet2_sonar.eval.checkpoints import load_encoder, resolve_checkpoint

    reference = load_encoder(tiny_encoder_ckpt)
    exp = tmp_path / "exp"
    exp.mkdir()
    state = {f"encoder.{k}": v for k, v in reference.state_dict().items()}
    state["predictor.weight"] = torch.zeros(3, 3)  # other parts of the ESPnet model are not the encoder's
    torch.save(state, exp / "valid.loss.best.pth")
    conf = {"encoder": "beats", "encoder_conf": {"config": BeatsConfig.named("tiny").to_dict()}}
    (exp / "config.yaml").write_text(yaml.safe_dump(conf))
    wavs, lens = _waves([12000, 7000])
    with torch.no_grad():
        want = reference.extract_layers(wavs, lens)
        for source in (exp, exp / "valid.loss.best.pth"):
            assert resolve_checkpoint(source).kind == "espnet"
            got = load_encoder(source).extract_layers(wavs, lens)
            for a, b in zip(want, got):
                torch.testing.assert_close(a, b)
        # encoder_conf may also be the bare BEATs config dict
        (exp / "config.yaml").write_text(yaml.safe_dump({"encoder_conf": BeatsConfig.named("tiny").to_dict()}))
        got = load_encoder(exp).extract_layers(wavs, lens)
        torch.testing.assert_close(want[-1], got[-1])
    # strict: a missing encoder tensor is an error naming the file
    del state["encoder.layer_norm.weight"]
    torch.save(state, exp / "valid.loss.best.pth")
    with pytest.raises(ValueError, match="valid.loss.best.pth"):
        load_encoder(exp)


@pytest.mark.timeout(60)
def test_load_encoder_rejects_unknown_formats(tmp_path):
    from espnet2_sonar.eval.checkpoints import load_encoder

    torch.save({"weights": torch.zeros(2)}, tmp_path / "odd.pt")
    with pytest.raises(ValueError, match="unknown checkpoint format"):
        load_encoder(tmp_path / "odd.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt"):
        load_encoder(tmp_path / "junk.pt")
    with pytest.raises(FileNotFoundError):
        load_encoder(tmp_path / "missing.pt")
    (tmp_path / "exp").mkdir()
    with pytest.raises(ValueError, match="no \\*.pth"):
        load_encoder(tmp_path / "exp")


def _tone_dir(root: Path, name: str, per_class: int, seed: int) -> Path:
    """Two classes: a 440 Hz tone vs white noise, 0.4-0.6 s."""
    rng = np.random.default_rng(seed)
    d = root / name
    (d / "wav").mkdir(parents=True)
    scp, lab = [], []
    for label in ("tone", "noise"):
        for i in range(per_class):
            n = int(rng.integers(int(0.4 * SR), int(0.6 * SR)))
            t = np.arange(n) / SR
            wav = 0.3 * np.sin(2 * np.pi * 440 * t) if label == "tone" else 0.3 * rng.standard_normal(n)
            utt = f"{name}_{label}_{i}"
            sf.write(d / "wav" / f"{utt}.wav", wav.astype(np.float32), SR)
            scp.append(f"{utt} {d / 'wav' / f'{utt}.wav'}")
            lab.append(f"{utt} {label}")
    (d / "wav.scp").write_text("\n".join(scp) + "\n")
    (d / "utt2label").write_text("\n".join(lab) + "\n")
    return d


def _s3prl_pooled(upstream, data_dir: Path) -> torch.Tensor:
    """[n, L+1, D]: each file alone through ``S3PRLUpstream``, every layer averaged over the
    encoder's own time steps (s3prl's valid frames also count the repeats of the last one)."""
    from espnet2_sonar.data.audio import load_audio
    from espnet2_sonar.data.labelled_dir import read_labelled_dir

    expert = upstream.upstream
    rows = []
    for path in read_labelled_dir(data_dir).wav_paths:
        wav = torch.as_tensor(load_audio(path, target_sr=SR)[0])[None]  # [1, T]
        lens = torch.tensor([wav.size(1)])
        with torch.no_grad():
            hs, hl = upstream(wav, lens)
        steps = int(expert.encoder.patch_lengths(lens)[0]) // expert.freq_patches
        assert 1 <= steps <= int(hl[0][0]) == hs[0].size(1)
        rows.append(torch.stack([h[0, :steps].mean(dim=0) for h in hs]))  # [L+1, D]
    return torch.stack(rows)


@pytest.mark.timeout(300)
def test_s3prl_features_feed_the_frozen_probe(upstream, tiny_encoder_ckpt, tmp_path):
    """The encoder loaded through s3prl's hub gives eval/probe the inputs ``run_probe`` pools
    itself, so the probe trained on them reproduces ``run_probe``'s test confusion matrix."""
    from espnet2_sonar.eval.checkpoints import load_encoder
    from espnet2_sonar.eval.embeddings import extract_pooled
    from espnet2_sonar.eval.metrics import classification_metrics
    from espnet2_sonar.eval.probe import ProbeConfig, evaluate_probe, fit_probe, run_probe
    from espnet2_sonar.data.labelled_dir import read_labelled_dir

    data = {s: _tone_dir(tmp_path, s, n, seed) for s, n, seed in (("train", 8, 0), ("dev", 3, 1), ("test", 4, 2))}
    config = ProbeConfig(max_epochs=40, patience=10)
    cfg = BeatsConfig.named("tiny")
    x = {s: _s3prl_pooled(upstream, d) for s, d in data.items()}
    encoder = load_encoder(tiny_encoder_ckpt)
    for s, d in data.items():
        want = extract_pooled(encoder, read_labelled_dir(d).wav_paths, batch_size=1, chunk_seconds=None, desc=s)
        assert x[s].shape == want.shape == (len(want), cfg.encoder_layers + 1, cfg.encoder_embed_dim)
        torch.testing.assert_close(x[s], want, atol=1e-5, rtol=1e-5)

    classes = ["noise", "tone"]
    y = {s: torch.tensor([classes.index(lab) for lab in read_labelled_dir(d).labels]) for s, d in data.items()}
    fit = fit_probe(x["train"], y["train"], x["dev"], y["dev"], len(classes), config, seed=0)
    _, accuracy, pred = evaluate_probe(fit.model, x["test"], y["test"])
    scores = classification_metrics(y["test"].tolist(), pred.tolist(), classes)

    reference = run_probe(str(tiny_encoder_ckpt), str(data["train"]), str(data["test"]), valid_dir=str(data["dev"]),
                          seed=0, config=config, batch_size=1, chunk_seconds=None)
    assert reference["classes"] == classes
    assert scores.confusion == reference["confusion"]
    confusion = np.array(scores.confusion)
    assert confusion.sum() == 8 and accuracy == pytest.approx(np.trace(confusion) / confusion.sum())
    assert reference["accuracy"] == pytest.approx(accuracy)
    assert fit.best_epoch == reference["best_epoch"]
    torch.testing.assert_close(fit.model.layer_weights(), torch.tensor(reference["layer_weights"]),
                               atol=1e-4, rtol=1e-4)
