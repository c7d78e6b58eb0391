"""Official BEATs checkpoint format: round trips, strictness, loading into ESPnet's BeatsEncoder."""

import logging

import pytest
import torch

from espnet2_sonar.beats.config import BeatsConfig
from espnet2_sonar.beats.encoder import BeatsEncoder
from espnet2_sonar.beats.frontend import FBANK_MEAN, FBANK_STD
from espnet2_sonar.beats.interop import CheckpointMismatchError, load_official, save_official

# ESPnet's BeatsEncoder adds two frozen all-ones convolutions of its own (padding-mask
# bookkeeping); they are not part of the official format.
ESPNET_ONLY_KEYS = {"patch_embedding_pad.weight", "raw2fbank_pad.weight"}


def _encoder(seed=0, **overrides):
    torch.manual_seed(seed)
    return BeatsEncoder(BeatsConfig.named("tiny", **overrides)).eval()


def _wavs(seed=0):
    g = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(2, 12000, generator=g), torch.tensor([12000, 12000])


@pytest.mark.timeout(60)
def test_save_load_round_trip_is_exact(tmp_path):
    enc = _encoder()
    path = save_official(enc, tmp_path / "m.pt", label_dict={"0": "dog"})
    ckpt = torch.load(path, weights_only=True)
    assert set(ckpt) == {"cfg", "model", "label_dict"} and ckpt["cfg"] == enc.config.to_dict()
    back = load_official(path)
    assert not back.training
    ours, theirs = enc.state_dict(), back.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    wavs, lengths = _wavs()
    with torch.no_grad():
        assert torch.equal(enc(wavs, lengths)[0], back(wavs, lengths)[0])


@pytest.mark.timeout(60)
def test_espnet_loads_saved_checkpoint_with_no_missing_or_unexpected_keys(tmp_path, caplog):
    from espnet2.beats.encoder import BeatsEncoder as EspnetBeatsEncoder

    enc = _encoder(seed=1)
    path = save_official(enc, tmp_path / "m.pt")
    with caplog.at_level(logging.INFO):
        espnet = EspnetBeatsEncoder(input_size=1, beats_ckpt_path=str(path), fbank_mean=FBANK_MEAN, fbank_std=FBANK_STD)
    espnet.eval()
    assert "Loaded Beats pretrained model" in caplog.text
    # key names are exactly the official ones: ESPnet's model = official model + its two extras
    model = torch.load(path, weights_only=True)["model"]
    assert "encoder.pos_conv.0.weight_g" in model and "encoder.pos_conv.0.weight_v" in model
    assert "encoder.layers.1.self_attn.relative_attention_bias.weight" in model
    result = espnet.load_state_dict(model, strict=False)
    assert result.unexpected_keys == []
    assert set(result.missing_keys) == ESPNET_ONLY_KEYS
    wavs, lengths = _wavs(seed=2)
    with torch.no_grad():
        torch.testing.assert_close(enc(wavs, lengths)[0], espnet(wavs, lengths)[0], atol=1e-5, rtol=0)


@pytest.mark.timeout(60)
def test_espnet_saved_weights_load_back(tmp_path):
    """Official-format weights written by another implementation (ESPnet) load into ours."""
    from espnet2.beats.encoder import BeatsEncoder as EspnetBeatsEncoder

    torch.manual_seed(3)
    cfg = BeatsConfig.named("tiny").to_dict()
    espnet = EspnetBeatsEncoder(input_size=1, beats_config=cfg, fbank_mean=FBANK_MEAN, fbank_std=FBANK_STD).eval()
    state = {k: v for k, v in espnet.state_dict().items() if k not in ESPNET_ONLY_KEYS}
    torch.save({"cfg": cfg, "model": state}, tmp_path / "esp.pt")
    ours = load_official(tmp_path / "esp.pt")
    wavs, lengths = _wavs(seed=4)
    with torch.no_grad():
        torch.testing.assert_close(ours(wavs, lengths)[0], espnet(wavs, lengths)[0], atol=1e-5, rtol=0)
    with pytest.raises(CheckpointMismatchError, match="raw2fbank_pad.weight"):
        torch.save({"cfg": cfg, "model": espnet.state_dict()}, tmp_path / "esp_full.pt")
        load_official(tmp_path / "esp_full.pt")
    load_official(tmp_path / "esp_full.pt", ignore=("*_pad.weight",))


@pytest.mark.timeout(60)
def test_strict_errors_name_the_keys(tmp_path):
    enc = _encoder()
    path = save_official(enc, tmp_path / "m.pt")
    ckpt = torch.load(path, weights_only=True)

    def write(model=None, cfg=None):
        p = tmp_path / "bad.pt"
        torch.save({"cfg": cfg or ckpt["cfg"], "model": model if model is not None else ckpt["model"]}, p)
        return p

    extra = dict(ckpt["model"], **{"predictor.weight": torch.zeros(527, 160), "predictor.bias": torch.zeros(527)})
    with pytest.raises(CheckpointMismatchError, match=r"unexpected keys \['predictor.bias', 'predictor.weight'\]"):
        load_official(write(extra))
    load_official(write(extra), ignore=("predictor.*",))  # explicit ignore list

    missing = {k: v for k, v in ckpt["model"].items() if k != "encoder.layers.1.fc2.bias"}
    with pytest.raises(CheckpointMismatchError, match=r"missing keys \['encoder.layers.1.fc2.bias'\]"):
        load_official(write(missing))
    with pytest.raises(CheckpointMismatchError, match="missing keys"):
        load_official(write(missing), ignore=("encoder.layers.1.fc2.bias",))  # ignoring cannot hide a need

    shape = dict(ckpt["model"], **{"encoder.layers.0.fc1.weight": torch.zeros(3, 3)})
    with pytest.raises(CheckpointMismatchError, match="encoder.layers.0.fc1.weight"):
        load_official(write(shape))

    with pytest.raises(ValueError, match="mask_ratio"):
        load_official(write(cfg=dict(ckpt["cfg"], mask_ratio=0.75)))
    load_official(write(cfg=dict(ckpt["cfg"], mask_ratio=0.75)), ignore_cfg=("mask_ratio",))

    rel = dict(ckpt["model"])
    key = "encoder.layers.1.self_attn.relative_attention_bias.weight"
    rel[key] = rel[key] + 1.0
    with pytest.raises(CheckpointMismatchError, match="relative_attention_bias"):
        load_official(write(rel))

    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        load_official(tmp_path / "nothing.pt")


@pytest.mark.timeout(60)
def test_saved_fine_tuned_predictor_needs_ignore(tmp_path):
    enc = _encoder()
    head = torch.nn.Linear(enc.output_size(), 5)
    path = save_official(enc, tmp_path / "ft.pt", label_dict={i: str(i) for i in range(5)}, predictor=head)
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["cfg"]["finetuned_model"] and ckpt["cfg"]["predictor_class"] == 5
    with pytest.raises(CheckpointMismatchError, match="predictor"):
        load_official(path)
    assert isinstance(load_official(path, ignore=("predictor.*",)), BeatsEncoder)
