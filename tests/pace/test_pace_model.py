"""PooledBackbone: cached-prefix forward = full forward, padding invariance, input capture."""

import pytest
import torch

from espnet2_sonar.beats.encoder import BeatsEncoder
from espnet2_sonar.pace.adapt import accumulate_inputs_, features_from_cache
from espnet2_sonar.pace.fbanks import pad_fbanks
from espnet2_sonar.pace.lora import LoRAConfig, add_lora, add_session_
from espnet2_sonar.pace.model import PooledBackbone
from espnet2_sonar.pace.projection import ProjectionConfig, SubspaceProtector


@pytest.fixture(scope="module")
def backbone():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        enc = BeatsEncoder("tiny").eval()
    gen = torch.Generator().manual_seed(1)
    lengths = [8000, 12000, 4000, 16000]
    wavs = [0.1 * torch.randn(n, generator=gen) for n in lengths]
    fbanks = []
    for w in wavs:
        out = enc.frontend(w[None], torch.tensor([w.numel()]))
        fbanks.append(out.fbank[0, : int(out.frame_lengths[0])])
    return PooledBackbone(enc), wavs, fbanks


@pytest.mark.timeout(60)
def test_pooled_matches_encoder_and_is_padding_invariant(backbone):
    net, wavs, fbanks = backbone
    with torch.no_grad():
        batched = net.extract(fbanks, batch_size=4)
        alone = torch.cat([net.extract([f], batch_size=1) for f in fbanks])
        out = net.encoder.encode(wavs[0][None], torch.tensor([wavs[0].numel()]))
    assert torch.allclose(batched, alone, atol=1e-5)
    assert torch.allclose(alone[0], out.last[0].mean(dim=0), atol=1e-5)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("start", [0, 1, 2])
def test_cached_prefix_forward_equals_full_forward(backbone, start):
    net, _, fbanks = backbone
    with torch.no_grad():
        full = net.extract(fbanks, batch_size=4)
        hidden = net.extract(fbanks, batch_size=3, start=start)
        cached = features_from_cache(net, hidden, start, batch_size=4)
    assert [h.x.shape[1] for h in hidden] == [f.shape[0] // 16 * 8 for f in fbanks]
    assert torch.allclose(cached, full, atol=1e-5)


@pytest.mark.timeout(60)
def test_captured_inputs_ignore_padding(backbone):
    net, _, fbanks = backbone
    enc = net.encoder
    modules = add_lora(enc, [1], LoRAConfig(rank=2, targets=("fc1", "qkv_proj")))
    add_session_(modules, torch.Generator().manual_seed(0))
    try:
        hidden = net.extract(fbanks, batch_size=4, start=1)
        batched = SubspaceProtector(ProjectionConfig())
        accumulate_inputs_(batched, net, modules, hidden, 1, batch_size=4)
        single = SubspaceProtector(ProjectionConfig())
        accumulate_inputs_(single, net, modules, hidden, 1, batch_size=1)
        for name in modules:
            assert torch.allclose(batched.cov[name], single.cov[name], rtol=1e-5, atol=1e-6)
            assert 1 <= batched.basis[name].shape[1] < enc.output_size()
        assert all(m.capture is None and m.token_mask is None for m in modules.values())
    finally:  # leave the shared encoder as it was
        layer = enc.encoder.layers[1]
        layer.fc1 = modules["layers.1.fc1"].base
        layer.self_attn.qkv_proj = modules["layers.1.qkv_proj"].base


@pytest.mark.timeout(30)
def test_pad_fbanks_lengths():
    batch = pad_fbanks([torch.ones(5, 128), torch.ones(9, 128)])
    assert batch.fbank.shape == (2, 9, 128) and batch.frame_lengths.tolist() == [5, 9]
    assert float(batch.fbank[0, 5:].abs().sum()) == 0.0
