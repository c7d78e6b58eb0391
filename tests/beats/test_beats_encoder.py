"""BeatsEncoder, frontend, masking, predictor and code head on tiny configs (CPU, seconds)."""

import pytest
import torch
import torchaudio.compliance.kaldi as kaldi

from espnet2_sonar.beats.config import BeatsConfig
from espnet2_sonar.beats.encoder import BeatsEncoder, EncoderOutput
from espnet2_sonar.beats.frontend import FBANK_MEAN, FBANK_STD, BeatsFrontend
from espnet2_sonar.beats.interop import save_official
from espnet2_sonar.beats.predictor import BeatsPredictor, CodeHead

ATOL = 1e-5


def _wavs(lengths, seed=0, pad_value=0.0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lengths)
    wavs = 0.1 * torch.randn(len(lengths), int(lengths.max()), generator=g)
    pad = torch.arange(wavs.shape[1])[None, :] >= lengths[:, None]
    return wavs.masked_fill(pad, pad_value), lengths


def _tiny(seed=0, **overrides):
    torch.manual_seed(seed)
    return BeatsEncoder(BeatsConfig.named("tiny", **overrides)).eval()


def _espnet_layers(espnet, wavs, lengths):
    """All L + 1 hidden states [B, N, D] of ESPnet's BeatsEncoder, captured with hooks."""
    captured = []
    layers = espnet.encoder.layers
    hooks = [layers[0].register_forward_pre_hook(lambda m, args: captured.append(args[0].transpose(0, 1)))]
    hooks += [layer.register_forward_hook(lambda m, a, out: captured.append(out[0].transpose(0, 1))) for layer in layers]
    with torch.no_grad():
        espnet(wavs, lengths)
    for h in hooks:
        h.remove()
    return captured


# ---------------------------------------------------------------- config
@pytest.mark.timeout(60)
def test_config_keys_round_trip_and_unknown_key():
    cfg = BeatsConfig.named("base")
    assert BeatsConfig.from_dict(cfg.to_dict()) == cfg
    assert (cfg.encoder_layers, cfg.encoder_embed_dim, cfg.max_distance, cfg.layer_wise_gradient_decay_ratio) == (
        12,
        768,
        800,
        0.6,
    )
    with pytest.raises(ValueError, match="mask_ratio"):
        BeatsConfig.from_dict({"encoder_layers": 2, "mask_ratio": 0.75})
    with pytest.raises(ValueError, match="nope"):
        BeatsConfig.named("nope")
    assert BeatsConfig.named("tiny", encoder_layers=3).encoder_layers == 3


@pytest.mark.timeout(60)
def test_named_architecture_sizes():
    with torch.device("meta"):
        sizes = {n: sum(p.numel() for p in BeatsEncoder(n).parameters()) for n in ("tiny", "small", "base")}
    assert 0.8e6 < sizes["tiny"] < 1.2e6
    assert 8e6 < sizes["small"] < 12e6
    assert 88e6 < sizes["base"] < 92e6


# ---------------------------------------------------------------- frontend
@pytest.mark.timeout(60)
def test_frontend_matches_torchaudio_per_item_and_ignores_padding():
    wavs, lengths = _wavs([9000, 4000, 2000], pad_value=0.7)  # junk padding must not leak in
    out = BeatsFrontend()(wavs, lengths)
    for i, n in enumerate(lengths.tolist()):
        item = wavs[i : i + 1, :n]
        if n < 2800:  # short input: padded with silence up to one patch (16 frames)
            item = torch.nn.functional.pad(item, (0, 2800 - n))
        ref = kaldi.fbank(item * 2**15, num_mel_bins=128, sample_frequency=16000, frame_length=25, frame_shift=10)
        ref = (ref - FBANK_MEAN) / (2 * FBANK_STD)
        f = int(out.frame_lengths[i])
        assert f == ref.shape[0]
        torch.testing.assert_close(out.fbank[i, :f], ref, atol=ATOL, rtol=0)
        assert bool((out.fbank[i, f:] == 0).all())


# ---------------------------------------------------------------- encoder
@pytest.mark.timeout(60)
def test_matches_espnet_beats_encoder_on_unpadded_input(tmp_path):
    from espnet2.beats.encoder import BeatsEncoder as EspnetBeatsEncoder

    ours = _tiny()
    path = save_official(ours, tmp_path / "tiny.pt")
    espnet = EspnetBeatsEncoder(input_size=1, beats_ckpt_path=str(path), fbank_mean=FBANK_MEAN, fbank_std=FBANK_STD)
    espnet.eval()
    wavs, lengths = _wavs([16000, 16000], seed=1)
    ref = _espnet_layers(espnet, wavs, lengths)
    with torch.no_grad():
        layers = ours.extract_layers(wavs, lengths)
    assert len(layers) == len(ref) == ours.config.encoder_layers + 1
    for a, b in zip(layers, ref):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0)


@pytest.mark.timeout(60)
def test_padded_batch_equals_items_alone_all_layers():
    enc = _tiny()
    wavs, lengths = _wavs([16000, 9000, 3300, 1000], pad_value=0.5)
    with torch.no_grad():
        batch = enc.encode(wavs, lengths)
        n = enc.patch_lengths(lengths)
        assert batch.num_patches.tolist() == n.tolist() == [48, 24, 8, 8]
        for i in range(len(lengths)):
            alone = enc.encode(wavs[i : i + 1, : lengths[i]], lengths[i : i + 1])
            for h_batch, h_alone in zip(batch.layers, alone.layers):
                torch.testing.assert_close(h_batch[i, : n[i]], h_alone[0], atol=ATOL, rtol=0)
                assert bool((h_batch[i, n[i] :] == 0).all())


@pytest.mark.timeout(60)
def test_training_attention_path_equals_inference_path():
    """With a trainable bias SDPA picks another kernel on the CPU (math) than without grad; same outputs."""
    enc = _tiny().train()  # tiny: all dropouts 0
    wavs, lengths = _wavs([16000, 7000], seed=2)
    with_grad = enc.extract_layers(wavs, lengths)
    assert with_grad[-1].requires_grad
    with torch.no_grad():
        without = enc.extract_layers(wavs, lengths)
    for a, b in zip(with_grad, without):
        torch.testing.assert_close(a.detach(), b, atol=ATOL, rtol=0)


@pytest.mark.timeout(60)
def test_forward_contract_and_short_inputs():
    enc = _tiny()
    wavs, lengths = _wavs([200, 1], seed=3)  # far shorter than one patch
    out, olens, states = enc(wavs, lengths)
    assert out.shape == (2, 8, enc.output_size()) and states is None
    assert olens.tolist() == [8, 8] and bool(torch.isfinite(out).all())
    out3, _, _ = enc(wavs[..., None], lengths)  # [B, T, 1] accepted
    torch.testing.assert_close(out3, out)


@pytest.mark.timeout(60)
def test_layer_wise_gradient_decay_scales_every_layer():
    """Loss on the last layer: layer i of L gets ratio**(L-1-i) of its ratio-1 gradient, the patch embedding ratio**L."""
    wavs, lengths = _wavs([8000, 6000], seed=4)
    grads = {}
    for ratio in (1.0, 0.6):
        enc = _tiny(seed=5, encoder_layers=3, layer_wise_gradient_decay_ratio=ratio).train()
        weight = torch.randn(enc(wavs, lengths)[0].shape, generator=torch.Generator().manual_seed(6))
        (enc(wavs, lengths)[0] * weight).sum().backward()
        grads[ratio] = {k: p.grad.clone() for k, p in enc.named_parameters() if p.grad is not None}
        assert set(grads[ratio]) == {k for k, _ in enc.named_parameters()}
    num_layers = 3
    for key, g1 in grads[1.0].items():
        if key.startswith("encoder.layers."):
            exponent = num_layers - 1 - int(key.split(".")[2])
        elif key.startswith("encoder.rel_pos"):
            continue  # shared by all layers: a mix of scales
        elif key.startswith("encoder.layer_norm") or key.startswith("encoder.pos_conv"):
            exponent = num_layers  # below the first layer
        else:
            exponent = num_layers  # patch embedding, layer_norm, post_extract_proj
        assert g1.abs().max() > 0, key
        expect = g1 * 0.6**exponent
        rel = (grads[0.6][key] - expect).norm() / expect.norm()
        assert rel < 1e-4, (key, exponent, float(rel))


# ---------------------------------------------------------------- masking
@pytest.mark.timeout(60)
def test_make_mask_counts_and_seed_determinism():
    enc = _tiny()
    num = torch.tensor([48, 24, 8, 1])

    def draw(seed):
        return enc.make_mask(num, 0.75, torch.Generator().manual_seed(seed))

    m = draw(7)
    assert m.shape == (4, 48) and m.dtype == torch.bool
    assert m.sum(1).tolist() == [36, 18, 6, 0]  # round(0.75 * valid), >= 1 patch kept
    assert not bool((m & (torch.arange(48)[None] >= num[:, None])).any())  # pads never masked
    assert torch.equal(m, draw(7)) and not torch.equal(m, draw(8))


@pytest.mark.timeout(60)
def test_masked_encode_keeps_visible_patches_and_is_padding_invariant():
    enc = _tiny()
    wavs, lengths = _wavs([16000, 9000, 2000], seed=8)
    num = enc.patch_lengths(lengths)
    mask = enc.make_mask(num, 0.75, torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = enc.encode(wavs, lengths, mask=mask)
        visible = (num - mask.sum(1)).tolist()
        assert (~out.padding_mask).sum(1).tolist() == visible == [12, 6, 2]
        assert len(out.layers) == enc.config.encoder_layers + 1 and out.layers[-1].shape[1] == 12
        for i, v in enumerate(visible):
            expect = torch.nonzero(~mask[i, : num[i]]).flatten()
            assert torch.equal(out.kept_index[i, :v], expect)
            assert bool((out.kept_index[i, v:] == -1).all())
            alone = enc.encode(wavs[i : i + 1, : lengths[i]], lengths[i : i + 1], mask=mask[i : i + 1, : num[i]])
            torch.testing.assert_close(out.last[i, :v], alone.last[0], atol=ATOL, rtol=0)
        nothing = enc.encode(wavs, lengths, mask=torch.zeros_like(mask))
        torch.testing.assert_close(nothing.last, enc.encode(wavs, lengths).last)
    with pytest.raises(ValueError, match="mask must be"):
        enc.encode(wavs, lengths, mask=mask[:, :-1])


# ---------------------------------------------------------------- predictor, head
@pytest.mark.timeout(60)
def test_predictor_fills_full_grid():
    enc = _tiny()
    pred = BeatsPredictor(enc.config, num_layers=2, dim=128)
    wavs, lengths = _wavs([16000, 5000], seed=9)
    num = enc.patch_lengths(lengths)
    mask = enc.make_mask(num, 0.75, torch.Generator().manual_seed(1))
    enc_out: EncoderOutput = enc.encode(wavs, lengths, mask=mask)
    hidden = pred(enc_out)
    assert hidden.shape == (2, 48, 128) and pred.output_size() == 128
    assert bool((hidden[1, num[1] :] == 0).all()) and bool(torch.isfinite(hidden).all())
    hidden[mask].sum().backward()
    assert pred.mask_embedding.grad.abs().sum() > 0
    assert enc.patch_embedding.weight.grad.abs().sum() > 0


@pytest.mark.timeout(60)
def test_code_head_grow_keeps_old_rows():
    head = CodeHead(16, 10)
    x = torch.randn(3, 16)
    before = head(x).detach()
    w_old = head.weight.detach().clone()
    head.grow_(14)
    assert head.num_codes == 14 and head(x).shape == (3, 14)
    assert torch.equal(head.weight[:10], w_old)
    torch.testing.assert_close(head(x)[:, :10], before)
    head.grow_(16, init=torch.ones(2, 16))
    assert torch.equal(head.weight[14:], torch.ones(2, 16))
    with pytest.raises(ValueError, match="shrink"):
        head.grow_(3)


@pytest.mark.timeout(60)
def test_training_after_inference_mode_encode_works():
    """Position-bucket caches made under torch.inference_mode must not break a later
    training step of the same encoder (autograd cannot save inference tensors)."""
    from espnet2_sonar.beats.config import BeatsConfig
    from espnet2_sonar.beats.encoder import BeatsEncoder

    enc = BeatsEncoder(BeatsConfig.named("tiny"))
    wavs, lengths = torch.randn(2, 16000) * 0.1, torch.tensor([16000, 12000])
    with torch.inference_mode():
        enc.eval().extract_layers(wavs, lengths)
    enc.train()
    out = enc.encode(wavs, lengths).last
    out.sum().backward()
    assert enc.patch_embedding.weight.grad is not None
