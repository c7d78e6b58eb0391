"""BEATs tokenizers: random projection (iter1), BeatsTokenizer, objective, official interop."""

import copy

import pytest
import torch
import torch.nn.functional as F

from espnet2_sonar.beats.encoder import BeatsEncoder
from espnet2_sonar.tokenizer.interop import (
    QUANTIZE_KEYS,
    load_official_tokenizer,
    official_tokenizer_checkpoint,
    save_official_tokenizer,
    tokenizer_from_official,
)
from espnet2_sonar.tokenizer.codebook import PAD_CODE
from espnet2_sonar.tokenizer.objective import TokenizerObjective, tokenizer_loss
from espnet2_sonar.tokenizer.occ import OnlineClusteredCodebook
from espnet2_sonar.tokenizer.random_projection import RandomProjectionTokenizer
from espnet2_sonar.tokenizer.tokenizer import (
    OFFICIAL_KEYS,
    OWN_KEYS,
    BeatsTokenizer,
    BeatsTokenizerConfig,
    TokenizerOutput,
)

LENGTHS = [16000, 11000, 4000]


def _wavs(seed: int = 0, lengths=LENGTHS):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(max(lengths)) / 16000.0
    tone = torch.sin(2 * torch.pi * 440.0 * t * (1 + torch.rand(len(lengths), 1, generator=g)))
    wavs = 0.3 * tone + 0.05 * torch.randn(len(lengths), max(lengths), generator=g)
    for i, n in enumerate(lengths):
        wavs[i, n:] = 0.7  # junk padding: must not matter
    return wavs, torch.tensor(lengths)


def _tiny(**overrides) -> BeatsTokenizerConfig:
    d = dict(encoder_layers=1, estimator_layers=1, quant_n=16, quant_dim=8)
    d.update(overrides)
    return BeatsTokenizerConfig.named("tiny", **d)


def _assert_padding_invariant(encode, wavs, lengths, num_patches):
    batch = encode(wavs, lengths)
    assert batch.shape == (len(lengths), int(num_patches.max()))
    for i, n in enumerate(lengths.tolist()):
        alone = encode(wavs[i : i + 1, :n], lengths[i : i + 1])
        k = int(num_patches[i])
        assert alone.shape == (1, k)
        assert torch.equal(batch[i, :k], alone[0]), f"item {i} changed by padding"
        assert (batch[i, k:] == PAD_CODE).all()


# ---------------------------------------------------------------- random projection
@pytest.mark.timeout(60)
def test_random_projection_padding_invariant_and_on_encoder_grid():
    tok = RandomProjectionTokenizer({"quant_n": 64, "quant_dim": 16, "seed": 3})
    wavs, lengths = _wavs()
    num_patches = tok.patch_lengths(lengths)
    encoder = BeatsEncoder(_tiny().encoder)
    assert torch.equal(num_patches, encoder.patch_lengths(lengths))
    _assert_padding_invariant(tok.encode, wavs, lengths, num_patches)
    codes = tok.encode(wavs, lengths)
    valid = codes[codes != PAD_CODE]
    assert valid.min() >= 0 and valid.max() < 64 and valid.unique().numel() > 4


@pytest.mark.timeout(60)
def test_random_projection_patches_match_conv_patch_grid():
    tok = RandomProjectionTokenizer({"quant_n": 8, "quant_dim": 4})
    fbank = torch.randn(2, 40, 128)
    rows = 40 // 16
    eye = torch.eye(256).reshape(256, 1, 16, 16)  # conv whose channel c reads patch element c
    conv = F.conv2d(fbank[:, None, : rows * 16], eye, stride=16).flatten(2).transpose(1, 2)
    assert torch.equal(tok.patches(fbank, rows), conv)


@pytest.mark.timeout(60)
def test_random_projection_is_seeded():
    wavs, lengths = _wavs(1)
    a = RandomProjectionTokenizer({"quant_n": 64, "quant_dim": 16, "seed": 5}).encode(wavs, lengths)
    b = RandomProjectionTokenizer({"quant_n": 64, "quant_dim": 16, "seed": 5}).encode(wavs, lengths)
    c = RandomProjectionTokenizer({"quant_n": 64, "quant_dim": 16, "seed": 6}).encode(wavs, lengths)
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ValueError, match="quant_size"):
        RandomProjectionTokenizer({"quant_size": 3})


# ---------------------------------------------------------------- BeatsTokenizer
@pytest.mark.timeout(60)
def test_config_keys_official_plus_ours():
    cfg = _tiny()
    assert list(cfg.to_flat()) == list(OFFICIAL_KEYS) + list(OWN_KEYS)
    assert BeatsTokenizerConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="quant_num"):
        BeatsTokenizerConfig.from_dict({"quant_num": 3})
    with pytest.raises(ValueError, match="expand_codez"):
        BeatsTokenizerConfig.from_dict({"codebook": "occ", "occ": {"expand_codez": 3}})
    with pytest.raises(ValueError, match="num_codes"):
        BeatsTokenizerConfig.from_dict({"codebook": "occ", "occ": {"num_codes": 3}})


@pytest.mark.timeout(60)
@pytest.mark.parametrize("codebook", ["norm_ema", "occ"])
def test_tokenizer_padding_invariant_and_encode_has_no_side_effects(codebook):
    torch.manual_seed(0)
    tok = BeatsTokenizer(_tiny(codebook=codebook, dropout=0.1))
    wavs, lengths = _wavs(2)
    tok.train()
    tok(wavs, lengths)  # first training step: k-means init + update
    before = {k: v.clone() for k, v in tok.state_dict().items()}
    _assert_padding_invariant(tok.encode, wavs, lengths, tok.patch_lengths(lengths))
    after = tok.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(m.training for m in tok.modules()), "encode must restore training mode"


@pytest.mark.timeout(60)
def test_tokenizer_same_seed_same_kmeans_and_codes():
    torch.manual_seed(1)
    a = BeatsTokenizer(_tiny(seed=4))
    b = copy.deepcopy(a)
    c = BeatsTokenizer(_tiny(seed=5))
    c.load_state_dict(a.state_dict())
    wavs, lengths = _wavs(3)
    for t in (a, b, c):
        t(wavs, lengths)
    assert torch.equal(a.quantize.weight, b.quantize.weight)
    assert not torch.equal(a.quantize.weight, c.quantize.weight)
    assert torch.equal(a.encode(wavs, lengths), b.encode(wavs, lengths))


@pytest.mark.timeout(60)
def test_objective_terms_and_gradients():
    torch.manual_seed(2)
    tok = BeatsTokenizer(_tiny())
    teacher = BeatsEncoder(BeatsTokenizerConfig.named("tiny", encoder={"encoder_layers": 1}).encoder)
    objective = TokenizerObjective(tok, teacher, commitment_weight=0.5).train()
    assert not teacher.training
    wavs, lengths = _wavs(4)
    out = objective(wavs, lengths)
    assert torch.isclose(out.loss, out.cosine + 0.5 * out.commitment)
    assert int(out.num_positions) == int(tok.patch_lengths(lengths).sum())
    out.loss.backward()
    for name in ("quantize_layer.0.weight", "estimator.connector.weight", "encoder.patch_embedding.weight"):
        grad = dict(tok.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name
    assert all(p.grad is None for p in teacher.parameters())


@pytest.mark.timeout(60)
def test_tokenizer_loss_is_cosine_on_valid_positions():
    est = torch.randn(2, 4, 6)
    pad = torch.tensor([[False] * 4, [False, False, True, True]])
    teacher = est.clone()
    teacher[1, 2:] = -est[1, 2:]  # disagreement only at pads: ignored
    out = TokenizerOutput(
        codes=torch.zeros(2, 4, dtype=torch.long), quantized=torch.zeros(2, 4, 3), estimate=est,
        padding_mask=pad, commitment_loss=torch.tensor(0.25), counts=torch.zeros(3),
    )
    loss = tokenizer_loss(out, teacher)
    assert loss.cosine.abs() < 1e-6 and torch.isclose(loss.loss, torch.tensor(0.25))
    teacher[0, 0] = -est[0, 0]  # one valid position fully opposite: 1 - cos = 2
    assert torch.isclose(tokenizer_loss(out, teacher).cosine, torch.tensor(2.0 / 6), atol=1e-6)
    with pytest.raises(ValueError, match="does not match"):
        tokenizer_loss(out, teacher[:, :3])


@pytest.mark.timeout(60)
def test_use_online_codebook_keeps_codes():
    torch.manual_seed(3)
    tok = BeatsTokenizer(_tiny())
    wavs, lengths = _wavs(5)
    tok(wavs, lengths)
    codes = tok.encode(wavs, lengths)
    with pytest.raises(ValueError, match="num_codes"):
        tok.use_online_codebook_({"num_codes": 99})
    occ = tok.use_online_codebook_({"max_codes": 24, "expand_codes": 4, "num_codes": 16, "dim": 8})
    assert isinstance(tok.quantize, OnlineClusteredCodebook) and occ.config.max_codes == 24
    assert torch.equal(tok.encode(wavs, lengths), codes)


# ---------------------------------------------------------------- official interop
def _trained_tokenizer(**overrides) -> BeatsTokenizer:
    torch.manual_seed(4)
    tok = BeatsTokenizer(_tiny(**overrides))
    tok(*_wavs(6))
    return tok.eval()


@pytest.mark.timeout(60)
def test_official_round_trip_is_exact(tmp_path):
    tok = _trained_tokenizer()
    path = save_official_tokenizer(tok, tmp_path / "tok.pt")
    ckpt = torch.load(path, weights_only=True)
    assert set(ckpt) == {"cfg", "model"}
    for key in (
        "patch_embedding.weight", "layer_norm.weight", "post_extract_proj.weight", "encoder.pos_conv.0.weight_g",
        "encoder.layers.0.self_attn.q_proj.weight", "encoder.layers.0.self_attn.relative_attention_bias.weight",
        "quantize_layer.0.weight", "quantize_layer.2.bias", *QUANTIZE_KEYS,
    ):  # fmt: skip
        assert key in ckpt["model"], key
    assert not any(k.startswith("estimator.") for k in ckpt["model"])
    loaded = load_official_tokenizer(path)
    ours = {k: v for k, v in tok.state_dict().items() if not k.startswith("estimator.")}
    back = {k: v for k, v in loaded.state_dict().items() if not k.startswith("estimator.")}
    assert ours.keys() == back.keys()
    assert all(torch.equal(ours[k], back[k]) for k in ours)
    assert loaded.config == tok.config
    wavs, lengths = _wavs(7)
    assert torch.equal(loaded.encode(wavs, lengths), tok.encode(wavs, lengths))


@pytest.mark.timeout(60)
def test_official_load_is_strict(tmp_path):
    ckpt = official_tokenizer_checkpoint(_trained_tokenizer())
    extra = copy.deepcopy(ckpt)
    extra["model"]["quantize.bogus"] = torch.zeros(1)
    with pytest.raises(RuntimeError, match="quantize.bogus"):
        tokenizer_from_official(extra)
    assert tokenizer_from_official(extra, ignore=["quantize.bog*"]).num_codes == 16
    missing = copy.deepcopy(ckpt)
    del missing["model"]["quantize.embedding.initted"]
    with pytest.raises(RuntimeError, match="quantize.embedding.initted"):
        tokenizer_from_official(missing)
    with pytest.raises(RuntimeError, match="missing keys"):
        tokenizer_from_official(ckpt, ignore=["quantize_layer.*"])
    shape = copy.deepcopy(ckpt)
    shape["model"]["quantize_layer.2.weight"] = torch.zeros(9, 160)
    with pytest.raises(RuntimeError, match="quantize_layer.2.weight"):
        tokenizer_from_official(shape)
    cfg = copy.deepcopy(ckpt)
    cfg["cfg"]["mask_ratio"] = 0.75
    with pytest.raises(ValueError, match="mask_ratio"):
        tokenizer_from_official(cfg, source="some/file.pt")
    assert tokenizer_from_official(cfg, ignore_cfg=["mask_ratio"]).num_codes == 16
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_official_tokenizer(tmp_path / "nope.pt")


@pytest.mark.timeout(60)
def test_official_round_trip_of_grown_online_codebook(tmp_path):
    tok = _trained_tokenizer(codebook="occ", occ={"max_codes": 40, "expand_codes": 5})
    wavs, lengths = _wavs(8)
    feats = tok.features(wavs, lengths)
    far = -feats.features.detach()[~feats.padding_mask]  # opposite directions: all novel
    assert tok.quantize.expand_(far) == 5 and tok.num_codes == 21
    loaded = load_official_tokenizer(save_official_tokenizer(tok, tmp_path / "occ.pt"))
    assert isinstance(loaded.quantize, OnlineClusteredCodebook)
    assert loaded.num_codes == 21 and loaded.config.quant_n == 21
    assert torch.equal(loaded.quantize.weight, tok.quantize.weight)
    assert torch.equal(loaded.encode(wavs, lengths), tok.encode(wavs, lengths))
