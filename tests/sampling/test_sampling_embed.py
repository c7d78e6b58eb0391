"""Tests of the embedding extraction behind the samplers (espnet2_sonar.sampling.embed: padding
invariance, sharded cache, resume) and of new/replay list mixing (espnet2_sonar.sampling.mixing)."""

import numpy as np
import pytest
import soundfile as sf
import torch

from espnet2_sonar.nn.frozen_extractor import FrozenExtractor
from espnet2_sonar.sampling.embed import embed_batch, extract_embeddings, load_cached
from espnet2_sonar.sampling.mixing import mix_lists, read_kaldi_map, write_kaldi_map, write_mixed_dir
from sonar_fixtures import random_official_encoder, write_wav_dir

# ----------------------------------------------------------------------------- embedding
class FrameStats(torch.nn.Module, FrozenExtractor):
    """Test double of the encoder: per-frame statistics -> two small layers.

    extract_layers(wavs [B, T], lengths [B]) -> [h0 [B, N, 4], h1 [B, N, 6]]; N = ceil(T / 160).
    """

    hop = 160

    def __init__(self, fail_after: int | None = None):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.proj = torch.nn.Linear(4, 6)
        with torch.no_grad():
            self.proj.weight.copy_(torch.randn(6, 4, generator=g))
            self.proj.bias.copy_(torch.randn(6, generator=g))
        self.calls = 0
        self.fail_after = fail_after

    def patch_lengths(self, lengths):
        return (lengths + self.hop - 1) // self.hop

    def extract_layers(self, wavs, lengths):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        b, t = wavs.shape
        n = -(-t // self.hop)
        x = torch.nn.functional.pad(wavs, (0, n * self.hop - t)).view(b, n, self.hop)
        h0 = torch.stack([x.mean(-1), x.abs().mean(-1), x.amax(-1), x.pow(2).mean(-1)], -1)
        return [h0, torch.tanh(self.proj(h0))]


def _read_sf(path):
    wav, sr = sf.read(path, dtype="float32")
    assert sr == 16000
    return wav


@pytest.mark.timeout(60)
def test_embed_batch_is_padding_invariant():
    m = FrameStats()
    rng = np.random.default_rng(0)
    wavs = [rng.normal(size=n).astype(np.float32) for n in (4000, 1234, 800)]
    together = embed_batch(m, wavs, layer=-1)
    alone = np.concatenate([embed_batch(m, [w], layer=-1) for w in wavs])
    np.testing.assert_allclose(together, alone, atol=1e-6)
    assert together.shape == (3, 6)
    assert embed_batch(m, wavs[:1], layer=0).shape == (1, 4)


@pytest.mark.timeout(60)
def test_extraction_resume_equals_uninterrupted_and_cache(tmp_path):
    scp = write_wav_dir(tmp_path / "data", "utt", 10, seed=0, seconds=(0.2, 0.5, 0.7)) / "wav.scp"
    kw = dict(layer=-1, batch_size=2, shard_size=3, reader=_read_sf, progress=False, tag="t")
    fresh = extract_embeddings(FrameStats(), scp, tmp_path / "full", **kw)
    assert fresh.ids == list(read_kaldi_map(scp)) and fresh.embeddings.shape == (10, 6)

    # interrupted during shard 1 (shard 0 = 3 items = 2 batches done)
    with pytest.raises(KeyboardInterrupt):
        extract_embeddings(FrameStats(fail_after=2), scp, tmp_path / "resume", **kw)
    assert sorted(p.name for p in (tmp_path / "resume" / "shards").glob("*.npz")) == ["00000.npz"]
    m = FrameStats()
    resumed = extract_embeddings(m, scp, tmp_path / "resume", **kw)
    assert m.calls == 2 + 2 + 1  # shards 1, 2 (3 items: 2 batches each) and 3 (1 item); shard 0 skipped
    np.testing.assert_array_equal(resumed.embeddings, fresh.embeddings)
    assert resumed.ids == fresh.ids

    # cached = fresh, without touching the module
    m2 = FrameStats()
    cached = extract_embeddings(m2, scp, tmp_path / "full", **kw)
    assert m2.calls == 0
    np.testing.assert_array_equal(cached.embeddings, fresh.embeddings)
    np.testing.assert_array_equal(load_cached(tmp_path / "full").embeddings, fresh.embeddings)
    with pytest.raises(ValueError, match="different settings.*layer"):
        extract_embeddings(FrameStats(), scp, tmp_path / "full", **{**kw, "layer": 0})


# ----------------------------------------------------------------------------- mixing
@pytest.mark.timeout(30)
def test_mixing_ratio(tmp_path):
    new = {f"n{i:02d}": f"/new/{i}.wav" for i in range(20)}
    replay = {f"r{i:02d}": f"/old/{i}.wav" for i in range(30)}
    mixed = mix_lists(new, replay, 0.5, seed=0)
    assert mixed.num_new == 20 and mixed.num_replay == 10 and mixed.ratio == 0.5
    assert mixed.sources.count("replay") == 10 and len(set(mixed.ids)) == 30
    assert all(mixed.ids[i] in new for i in range(len(mixed.ids)) if mixed.sources[i] == "new")
    # evenly interleaved: every window of 6 holds 2 replay items
    src = np.array([s == "replay" for s in mixed.sources])
    assert all(src[i : i + 6].sum() == 2 for i in range(0, 30, 6))
    assert mix_lists(new, replay, 0.5, seed=0).ids == mixed.ids
    with pytest.raises(ValueError, match="repeat"):
        mix_lists(new, dict(list(replay.items())[:5]), 0.5)
    rep = mix_lists(new, dict(list(replay.items())[:4]), 0.5, repeat=True, seed=1)
    assert rep.num_replay == 10 and len(set(rep.ids)) == 30
    assert {o for o, s in zip(rep.origin, rep.sources) if s == "replay"} == set(list(replay)[:4])

    nd, rd = tmp_path / "new", tmp_path / "rep"
    write_kaldi_map(nd / "wav.scp", new)
    write_kaldi_map(nd / "utt2dur", {k: "1.0" for k in new})
    write_kaldi_map(rd / "wav.scp", replay)
    write_kaldi_map(rd / "utt2dur", {k: "2.0" for k in replay})
    out = write_mixed_dir(nd, rd, tmp_path / "mix", 1.0)
    src = read_kaldi_map(tmp_path / "mix" / "utt2source")
    assert list(src.values()).count("replay") == 20 == out.num_replay
    durs = read_kaldi_map(tmp_path / "mix" / "utt2dur")
    assert all(durs[k] == ("2.0" if s == "replay" else "1.0") for k, s in src.items())



@pytest.mark.timeout(60)
def test_embed_batch_real_encoder_padding_invariant(tmp_path):
    from espnet2_sonar.beats.interop import load_official

    enc = load_official(random_official_encoder(tmp_path / "m0.pt"))
    rng = np.random.default_rng(0)
    wavs = [(0.3 * rng.normal(size=n)).astype(np.float32) for n in (9000, 4100, 3000)]
    together = embed_batch(enc, wavs, layer=-1)
    alone = np.concatenate([embed_batch(enc, [w], layer=-1) for w in wavs])
    np.testing.assert_allclose(together, alone, atol=1e-4)
