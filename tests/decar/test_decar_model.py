"""DECAR model parts: SpecAugment, model/classifier, checkpoints, iterators (encoder: tests/efficientnet/)."""

import numpy as np
import pytest
import torch

from decar_fixtures import write_sound_dir
from espnet2_sonar.decar.augment import BandLimit
from espnet2_sonar.decar.checkpoint import save_encoder
from espnet2_sonar.decar.config import DecarConfig
from espnet2_sonar.decar.model import DecarModel
from espnet2_sonar.efficientnet.file import KIND
from espnet2_sonar.efficientnet.model import EfficientNetEncoder
from espnet2_sonar.beats.encoder_choice import SonarBeatsEncoder
from espnet2_sonar.nn.specaug import SpecAugment, SpecAugmentConfig

torch.set_num_threads(1)


def _batch(lengths=(16000, 9000, 3000), seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lengths)
    wavs = torch.randn(len(lengths), int(lengths.max()), generator=g) * 0.1
    return wavs, lengths


@pytest.mark.timeout(30)
def test_unknown_config_keys_are_errors():
    with pytest.raises(ValueError, match="num_clustres"):
        DecarConfig.from_dict({"num_clustres": 8})


@pytest.mark.timeout(30)
def test_spec_augment_takes_the_config_and_keeps_decar_draws():
    """DECAR masks through nn.specaug with its config; the draws are those of DECAR's earlier
    own SpecAugment (same seed, same masks), pinned here for one seed."""
    cfg = {"num_clusters": 4, "head_dims": [8], "freq_masks": 2, "freq_mask_width": 10, "time_mask_ratio": 0.2}
    aug = DecarModel(EfficientNetEncoder("tiny"), cfg).augment
    assert isinstance(aug, SpecAugment)
    assert aug.config == SpecAugmentConfig(freq_masks=2, freq_mask_width=10, time_masks=2, time_mask_ratio=0.2)
    lengths = torch.tensor([50, 30, 10, 1])
    freq, time = aug.spans(lengths, 64, torch.Generator().manual_seed(1))
    time, freq = time.cover(50), freq.cover(64)

    def runs(*spans):
        return [i for a, b in spans for i in range(a, b)]

    assert [row.nonzero().flatten().tolist() for row in time] == [runs((22, 36)), [5, 6, 8, 9], [5, 6, 7], []]
    assert [row.nonzero().flatten().tolist() for row in freq] == [
        runs((15, 23), (44, 48)), runs((46, 50)), runs((25, 37)), runs((17, 24), (27, 32))
    ]


@pytest.mark.timeout(30)
def test_band_limit_removes_the_band_above_the_cutoff_only():
    wavs, lengths = _batch(lengths=(16000, 12000, 4000), seed=3)
    wavs[1, 12000:] = 0.0
    wavs[2, 4000:] = 0.0
    full = BandLimit(prob=1.0, min_hz=3000.0, max_hz=5000.0)
    out = full(wavs, lengths, torch.Generator().manual_seed(0))
    cut = full.cutoffs(3, torch.Generator().manual_seed(0))
    assert torch.isfinite(cut).all() and ((cut >= 3000) & (cut <= 5000)).all()
    n = wavs.shape[1]
    freqs = torch.fft.rfftfreq(n, d=1 / 16000)
    for i in range(3):
        a, b = torch.fft.rfft(wavs[i]).abs(), torch.fft.rfft(out[i]).abs()
        if i == 0:  # nothing to trim at the end: an exact ideal low-pass
            assert b[freqs > cut[i] + 20].max() < 1e-3 * a[freqs > cut[i] + 20].max()
            torch.testing.assert_close(b[freqs < cut[i] - 20], a[freqs < cut[i] - 20], rtol=1e-3, atol=1e-3)
        else:  # zeroing the ringing past the end leaves a little leakage
            high = freqs > cut[i] + 200
            assert b[high].pow(2).sum() < 0.05 * a[high].pow(2).sum()
        assert (out[i, int(lengths[i]) :] == 0).all()
    # seeded; prob 0 changes nothing and draws nothing; prob 0.5 keeps some clips as they are
    again = full(wavs, lengths, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    g = torch.Generator().manual_seed(5)
    assert torch.equal(BandLimit(prob=0.0)(wavs, lengths, g), wavs)
    assert torch.equal(g.get_state(), torch.Generator().manual_seed(5).get_state())
    share = torch.isfinite(BandLimit(prob=0.5).cutoffs(4000, torch.Generator().manual_seed(1))).float().mean()
    assert 0.45 < share < 0.55
    with pytest.raises(ValueError, match="lowpass_prob"):
        DecarConfig(lowpass_prob=1.5)
    with pytest.raises(ValueError, match="lowpass_min_hz"):
        DecarConfig(lowpass_min_hz=7000.0, lowpass_max_hz=4000.0)


@pytest.mark.timeout(60)
def test_band_limit_is_a_training_augmentation_only():
    model = DecarModel(EfficientNetEncoder("tiny"), {"num_clusters": 4, "head_dims": [16], "lowpass_prob": 1.0,
                                                     "lowpass_min_hz": 2000.0, "lowpass_max_hz": 2000.0})
    seen = []
    model.encoder.frontend.register_forward_pre_hook(lambda mod, args: seen.append(args[0].clone()))
    wavs, lengths = _batch()
    with torch.no_grad():
        model.features(wavs, lengths, augment=False)  # feature extraction for clustering: clean
        model(wavs, lengths, pseudo_label=torch.tensor([0, 1, 2]))  # a training step: band-limited
    freqs = torch.fft.rfftfreq(wavs.shape[1], d=1 / 16000)
    high = freqs > 2200
    energy = [torch.fft.rfft(w[0]).abs()[high].pow(2).sum() for w in seen]
    assert torch.equal(seen[0], wavs)
    assert energy[1] < 1e-6 * energy[0]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("encoder", ["efficientnet", "beats"])
def test_model_trains_on_pseudo_labels(encoder):
    torch.manual_seed(0)
    enc = EfficientNetEncoder("tiny") if encoder == "efficientnet" else SonarBeatsEncoder("tiny")
    model = DecarModel(enc, {"num_clusters": 5, "head_dims": [32, 16]})
    wavs, lengths = _batch()
    labels = torch.tensor([0, 3, 4])
    loss, stats, weight = model(wavs, lengths, pseudo_label=labels)
    assert torch.isfinite(loss) and int(weight) == 3 and set(stats) == {"loss", "acc"}
    loss.backward()
    assert all(p.grad is not None for p in model.head.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())
    assert int(model.step) == 1
    with pytest.raises(ValueError, match="pseudo_label"):
        model(wavs, lengths)
    with pytest.raises(ValueError, match="out of range"):
        model(wavs, lengths, pseudo_label=torch.tensor([0, 1, 5]))


@pytest.mark.timeout(30)
def test_classifier_reset_is_seeded():
    model = DecarModel(EfficientNetEncoder("tiny"), {"num_clusters": 7, "head_dims": [16]})
    model.reset_classifier_(torch.Generator().manual_seed(3))
    w = model.classifier.weight.detach().clone()
    model.reset_classifier_(torch.Generator().manual_seed(4))
    assert not torch.equal(w, model.classifier.weight)
    model.reset_classifier_(torch.Generator().manual_seed(3))
    assert torch.equal(w, model.classifier.weight) and (model.classifier.bias == 0).all()
    assert 0.005 < w.std() < 0.02


@pytest.mark.timeout(60)
@pytest.mark.parametrize("encoder", ["efficientnet", "beats"])
def test_exported_encoder_loads_in_the_probe_loader(encoder, tmp_path):
    from espnet2_sonar.eval.checkpoints import load_encoder

    torch.manual_seed(0)
    enc = (EfficientNetEncoder("tiny") if encoder == "efficientnet" else SonarBeatsEncoder("tiny")).eval()
    path = save_encoder(enc, tmp_path / "encoder.pt")
    ckpt = torch.load(path, weights_only=True)
    assert (ckpt.get("kind") == KIND) == (encoder == "efficientnet")
    wavs, lengths = _batch()
    with torch.no_grad():
        ref = enc.extract_layers(wavs, lengths)
        loaded = load_encoder(path)
        assert isinstance(loaded, EfficientNetEncoder) == (encoder == "efficientnet")
        for a, b in zip(ref, loaded.extract_layers(wavs, lengths)):
            torch.testing.assert_close(a, b)
    if encoder == "efficientnet":  # strict: an extra key is an error naming the file
        ckpt["model"]["extra.weight"] = torch.zeros(1)
        torch.save(ckpt, tmp_path / "bad.pt")
        with pytest.raises(ValueError, match="bad.pt.*unexpected"):
            load_encoder(tmp_path / "bad.pt")


@pytest.mark.timeout(60)
def test_iterator_adds_pseudo_labels_and_samples_uniformly(tmp_path):
    from espnet2.train.collate_fn import CommonCollateFn
    from espnet2.train.dataset import ESPnetDataset

    from espnet2_sonar.data.espnet_loader import register_data_types
    from espnet2_sonar.decar.iterator import PseudoLabelIterFactory
    from espnet2_sonar.decar.recluster import write_labels

    register_data_types()
    data = write_sound_dir(tmp_path / "d", "u", 12, seed=0)
    keys = [line.split()[0] for line in (data / "wav.scp").read_text().splitlines()]
    labels = [0] * 9 + [1, 1, 2]
    write_labels(tmp_path / "train.labels", keys, labels)
    dataset = ESPnetDataset([(str(data / "wav.scp"), "speech", "sonar_sound")])
    factory = PseudoLabelIterFactory(dataset, keys, lambda e: tmp_path / "train.labels", batch_size=4,
                                     uniform=True, seed=0, collate_fn=CommonCollateFn())  # fmt: skip
    epoch = factory.build_iter(1)
    seen = []
    for ids, batch in epoch:
        assert batch["pseudo_label"].tolist() == [labels[keys.index(u)] for u in ids]
        assert batch["speech"].shape[0] == len(ids)
        seen += batch["pseudo_label"].tolist()
    assert len(epoch) == 3 and np.bincount(seen).tolist() == [4, 4, 4]
    missing = PseudoLabelIterFactory(dataset, keys, lambda e: tmp_path / "none.labels", 4, uniform=False)
    with pytest.raises(FileNotFoundError, match="none.labels"):
        list(missing.build_iter(1))


@pytest.mark.timeout(30)
def test_a_cosine_schedule_shorter_than_training_is_an_error():
    import argparse

    from espnet2_sonar.tasks.decar import check_cosine_schedule

    def args(t_max, max_epoch=50, scheduler="cosineannealinglr"):
        return argparse.Namespace(scheduler=scheduler, scheduler_conf={"T_max": t_max}, max_epoch=max_epoch)

    check_cosine_schedule(args(50))
    check_cosine_schedule(args(60))
    check_cosine_schedule(args(10, scheduler=None))  # no schedule: nothing to check
    with pytest.raises(ValueError, match=r"T_max \(25\) must be >= --max_epoch \(50\)"):
        check_cosine_schedule(args(25))
    with pytest.raises(ValueError, match="T_max"):
        check_cosine_schedule(argparse.Namespace(scheduler="cosineannealinglr", scheduler_conf={}, max_epoch=5))
