"""Tests of espnet2_sonar.sampling (TRSS, BDS, k-means, embedding cache, mixing) and the sampling CLI."""

import importlib.util
import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from espnet2_sonar.sampling.balanced import (
    BalancedBatchSampler,
    BalancedSampler,
    balanced_weights,
    draw_balanced_ids,
)
from espnet2_sonar.sampling.embed import embed_batch, extract_embeddings, load_cached
from espnet2_sonar.sampling.kmeans import _fill_empty_clusters, kmeans
from espnet2_sonar.sampling.mixing import mix_lists, read_kaldi_map, write_kaldi_map, write_mixed_dir
from espnet2_sonar.sampling.stratified import (
    StratifiedSamplerConfig,
    allocate,
    replay_budget,
    stratified_sample,
    stratum_relevance,
)

LN2 = math.log(2.0)


# ----------------------------------------------------------------------------- allocation
@pytest.mark.timeout(30)
def test_allocate_hand_computed_formula():
    # |P_old| = 200 -> proportions [.6, .3, .1]; r = [0, 0, 1], tau = 1/ln2 -> exp(r/tau) = [1, 1, 2]
    # -> softmax [.25, .25, .5]; alpha = .5 -> w = [.425, .275, .3]; B = 40 -> n = [17, 11, 12]
    a = allocate([120, 60, 20], [0.0, 0.0, 1.0], 40, alpha=0.5, tau=1 / LN2)
    np.testing.assert_allclose(a.weights, [0.425, 0.275, 0.3])
    np.testing.assert_allclose(a.targets, [17.0, 11.0, 12.0])
    assert a.counts.tolist() == [17, 11, 12]
    assert a.total == 40


@pytest.mark.timeout(30)
def test_allocate_cap_redistributes_in_proportion():
    # same weights, sizes [60, 30, 10]: stratum 2 wants 12 > 10 -> capped at 10; the other 30
    # go to strata 0, 1 in ratio .425 : .275 -> 18.214..., 11.785... -> largest remainder [18, 12]
    a = allocate([60, 30, 10], [0.0, 0.0, 1.0], 40, alpha=0.5, tau=1 / LN2)
    np.testing.assert_allclose(a.targets, [30 * 0.425 / 0.7, 30 * 0.275 / 0.7, 10.0])
    assert a.counts.tolist() == [18, 12, 10]


@pytest.mark.timeout(30)
def test_allocate_min_per_stratum_and_min_capped_by_size():
    # alpha = 0: w = [.6, .3, .1], B = 20 -> [12, 6, 2]; min 4 lifts stratum 2 to 4, the other 16
    # split .6 : .3 -> 10.67, 5.33 -> [11, 5, 4]
    a = allocate([60, 30, 10], [0.3, 0.1, 0.9], 20, alpha=0.0, tau=1.0, min_per_stratum=4)
    assert a.counts.tolist() == [11, 5, 4]
    # a stratum of 2 items: the minimum is capped at 2; remaining 18 split 60 : 30 -> [12, 6]
    b = allocate([60, 30, 2], [0.0, 0.0, 0.0], 20, alpha=0.0, tau=1.0, min_per_stratum=4)
    assert b.counts.tolist() == [12, 6, 2]
    # budget over |P_old|: everything; minimums over the budget: the minimums win
    assert allocate([6, 3, 1], [0, 0, 0], 50, alpha=0.5, tau=1.0).counts.tolist() == [6, 3, 1]
    assert allocate([60, 30, 10], [0, 0, 0], 2, alpha=0.0, tau=1.0, min_per_stratum=4).counts.tolist() == [4, 4, 4]
    # alpha = 1, sharp tau: all weight on stratum 2 (capped at 10); the rest goes to the minimums
    assert allocate([10, 10, 10], [0, 0.5, 1], 12, alpha=1.0, tau=1e-3, min_per_stratum=1).counts.tolist() == [1, 1, 10]


@pytest.mark.timeout(30)
def test_alpha_zero_is_proportional_whatever_the_relevance():
    for r in ([0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.2, 0.5, 0.3]):
        assert allocate([50, 30, 20], r, 10, alpha=0.0, tau=0.05).counts.tolist() == [5, 3, 2]


@pytest.mark.timeout(60)
@pytest.mark.filterwarnings("error")
def test_allocate_properties_random():
    rng = np.random.default_rng(0)
    for _ in range(300):
        s = int(rng.integers(1, 12))
        sizes = rng.integers(1, 40, size=s)
        r = rng.dirichlet(np.ones(s))
        mps = int(rng.integers(0, 5))
        budget = int(rng.integers(0, sizes.sum() + 10))
        alpha = float(rng.choice([rng.uniform(), 1.0]))
        tau = float(rng.choice([rng.uniform(0.05, 2), 1e-3]))  # 1e-3: softmax weights underflow to 0
        a = allocate(sizes, r, budget, alpha=alpha, tau=tau, min_per_stratum=mps)
        lo = np.minimum(mps, sizes)
        assert (a.counts >= lo).all() and (a.counts <= sizes).all()
        assert np.isclose(a.weights.sum(), 1.0)
        if lo.sum() <= budget <= sizes.sum():
            assert a.total == budget
        assert np.all(np.abs(a.counts - a.targets) < 1.0)
        # unbounded case: exactly the formula up to rounding
        free = allocate(sizes, r, budget, alpha=alpha, tau=tau)
        raw = budget * a.weights
        if (raw <= sizes).all():
            assert np.all(np.abs(free.counts - raw) < 1.0)
            assert np.allclose(free.targets, raw)


@pytest.mark.timeout(30)
def test_replay_budget_and_config_errors():
    assert replay_budget(10, 0.5) == 5 and replay_budget(3, 0.5) == 2 and replay_budget(7, 0.0) == 0
    with pytest.raises(ValueError, match="unknown StratifiedSamplerConfig key.*'rh0'"):
        StratifiedSamplerConfig.from_dict({"rh0": 0.5})
    with pytest.raises(ValueError, match="alpha"):
        StratifiedSamplerConfig(alpha=1.5)
    with pytest.raises(ValueError, match="relevance"):
        StratifiedSamplerConfig(relevance="cosine")


# ----------------------------------------------------------------------------- TRSS pipeline
def _gaussian_pool(seed=0, per=60, dim=8, num=4):
    rng = np.random.default_rng(seed)
    means = 6.0 * np.eye(dim)[:num]
    prior = np.concatenate([m + rng.normal(size=(per, dim)) for m in means]).astype(np.float32)
    labels = np.repeat(np.arange(num), per)
    ids = [f"p{i:04d}" for i in range(len(prior))]
    return ids, prior, labels, means


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["nearest", "softmax"])
def test_relevance_puts_budget_near_new_domain(mode):
    ids, prior, labels, means = _gaussian_pool()
    new = (means[2] + np.random.default_rng(1).normal(size=(40, 8))).astype(np.float32)
    cfg = StratifiedSamplerConfig(num_strata=4, rho=1.0, alpha=0.8, tau=0.1, min_per_stratum=2, relevance=mode, seed=3)
    res = stratified_sample(ids, prior, new, cfg)
    strata = res.prior_strata
    # k-means recovers the four Gaussians
    target = int(np.bincount(strata[labels == 2]).argmax())
    assert np.all(strata[labels == 2] == target)
    a = res.allocation
    assert int(np.argmax(a.relevance)) == target and a.relevance[target] > 0.9
    assert a.counts[target] == a.counts.max() and a.counts[target] > 2 * np.delete(a.counts, target).max()
    assert a.total == 40 == len(res.sampled_ids)
    # ids unique, each inside its stratum, per-stratum counts as allocated
    assert len(set(res.sampled_ids)) == len(res.sampled_ids)
    pos = {k: i for i, k in enumerate(ids)}
    for k, s in zip(res.sampled_ids, res.sampled_strata):
        assert strata[pos[k]] == s
    assert np.bincount(res.sampled_strata, minlength=4).tolist() == a.counts.tolist()
    # alpha = 0 on the same data: proportional (4 equal strata -> 10 each)
    prop = stratified_sample(ids, prior, new, StratifiedSamplerConfig(num_strata=4, rho=1.0, alpha=0.0, seed=3))
    assert prop.allocation.counts.tolist() == [10, 10, 10, 10]


@pytest.mark.timeout(60)
def test_stratified_sample_reproducible_by_seed(tmp_path):
    ids, prior, _, means = _gaussian_pool(per=80)
    new = (means[1] + np.random.default_rng(2).normal(size=(50, 8))).astype(np.float32)
    cfg = dict(num_strata=6, rho=0.6, alpha=0.5, tau=0.2, min_per_stratum=1)
    r1 = stratified_sample(ids, prior, new, StratifiedSamplerConfig(seed=7, **cfg))
    r2 = stratified_sample(ids, prior, new, StratifiedSamplerConfig(seed=7, **cfg))
    r3 = stratified_sample(ids, prior, new, StratifiedSamplerConfig(seed=8, **cfg))
    assert r1.sampled_ids == r2.sampled_ids and r1.allocation.counts.tolist() == r2.allocation.counts.tolist()
    assert set(r1.sampled_ids) != set(r3.sampled_ids)
    r1.write_report(tmp_path / "report.json")
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["seed"] == 7 and rep["budget"] == 30 and rep["sampled_ids"] == r1.sampled_ids
    assert [s["allocated"] for s in rep["strata"]] == r1.allocation.counts.tolist()
    assert rep["config"]["num_strata"] == 6


@pytest.mark.timeout(30)
def test_stratum_relevance_sums_to_one():
    c = np.eye(3, dtype=np.float32)
    x = np.array([[1, 0, 0], [0.9, 0.1, 0], [0, 0, 1]], dtype=np.float32)
    np.testing.assert_allclose(stratum_relevance(x, c, "nearest"), [2 / 3, 0, 1 / 3])
    soft = stratum_relevance(x, c, "softmax", temperature=0.5)
    assert np.isclose(soft.sum(), 1.0) and soft[0] > soft[2] > soft[1]


# ----------------------------------------------------------------------------- k-means
@pytest.mark.timeout(60)
def test_kmeans_seeded_determinism_and_consistency():
    x = np.random.default_rng(0).normal(size=(300, 6)).astype(np.float32)
    a, b = kmeans(x, 8, seed=5), kmeans(x, 8, seed=5)
    np.testing.assert_array_equal(a.centroids, b.centroids)
    np.testing.assert_array_equal(a.assignments, b.assignments)
    assert a.sizes.sum() == 300 and (a.sizes >= 1).all() and a.num_clusters == 8
    assert np.bincount(a.assignments, minlength=8).tolist() == a.sizes.tolist()
    for j in range(8):  # centroids are member means
        np.testing.assert_allclose(a.centroids[j], x[a.assignments == j].mean(0), atol=1e-5)


@pytest.mark.timeout(60)
def test_kmeans_degenerate_inputs_never_nan():
    # fewer distinct points than k: clamped, every cluster non-empty
    dup = np.array([[0, 0]] * 20 + [[1, 1]] * 3 + [[5, 5]], dtype=np.float32)
    r = kmeans(dup, 5, seed=0)
    assert r.num_clusters == 3 and r.requested_k == 5 and (r.sizes >= 1).all()
    assert np.isfinite(r.centroids).all()
    # k > n
    few = np.random.default_rng(1).normal(size=(4, 3)).astype(np.float32)
    r = kmeans(few, 10, seed=0)
    assert r.num_clusters == 4 and r.sizes.tolist() == [1, 1, 1, 1]
    # all identical
    r = kmeans(np.ones((10, 3), np.float32), 3)
    assert r.num_clusters == 1 and np.isfinite(r.centroids).all()
    with pytest.raises(ValueError, match="NaN"):
        kmeans(np.full((5, 2), np.nan, np.float32), 2)


@pytest.mark.timeout(30)
def test_empty_cluster_reseeding():
    x = np.concatenate([np.zeros((10, 2)), np.ones((10, 2)) * 3]).astype(np.float32)
    x += np.random.default_rng(0).normal(scale=0.1, size=x.shape).astype(np.float32)
    # two centroids that no point is closest to
    cents = np.array([[0, 0], [3, 3], [100, 100], [-100, 50]], dtype=np.float32)
    c, assign = _fill_empty_clusters(x, cents, spherical=False)
    assert np.bincount(assign, minlength=4).min() >= 1 and np.isfinite(c).all()


# ----------------------------------------------------------------------------- BDS
@pytest.mark.timeout(30)
def test_bds_weights_inverse_cluster_size():
    w = balanced_weights(np.array([0, 0, 0, 1, 2, 2]))
    np.testing.assert_allclose(w, [1 / 9, 1 / 9, 1 / 9, 1 / 3, 1 / 6, 1 / 6])
    assert np.isclose(w.sum(), 1.0)
    # cluster ids with gaps: K counts non-empty clusters only
    np.testing.assert_allclose(balanced_weights(np.array([3, 3, 7])), [0.25, 0.25, 0.5])


@pytest.mark.timeout(60)
def test_bds_sampler_balances_clusters():
    assign = np.repeat([0, 1, 2], [500, 50, 5])
    s = BalancedSampler.from_assignments(assign, num_samples=30000, seed=1)
    freq = np.bincount(assign[list(s)], minlength=3) / 30000
    np.testing.assert_allclose(freq, [1 / 3] * 3, atol=0.02)
    first = list(s)
    assert first == list(s)  # same epoch -> same draws
    s.set_epoch(1)
    assert first != list(s)
    ids = [f"u{i}" for i in range(len(assign))]
    drawn = draw_balanced_ids(ids, balanced_weights(assign), 6000, seed=0)
    assert drawn == draw_balanced_ids(ids, balanced_weights(assign), 6000, seed=0)
    frac_small = np.mean([int(d[1:]) >= 550 for d in drawn])
    assert abs(frac_small - 1 / 3) < 0.03
    bs = BalancedBatchSampler(ids, assign, batch_size=8, num_batches=5, seed=2)
    batches = list(bs)
    assert len(batches) == len(bs) == 5 and all(isinstance(b, tuple) and len(b) == 8 for b in batches)
    assert batches == bs.generate(2) and batches != bs.generate(3)


# ----------------------------------------------------------------------------- embedding
class FrameStats(torch.nn.Module):
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


def _write_corpus(root, n, seed=0, prefix="utt"):
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        dur = int(rng.integers(3000, 12000))
        p = root / f"{prefix}{i:03d}.wav"
        sf.write(p, (0.3 * rng.normal(size=dur)).astype(np.float32), 16000)
        lines.append((f"{prefix}{i:03d}", str(p)))
    write_kaldi_map(root / "wav.scp", lines)
    write_kaldi_map(root / "utt2dur", [(k, f"{sf.info(p).duration:.3f}") for k, p in lines])
    return root / "wav.scp"


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
    scp = _write_corpus(tmp_path / "data", 10)
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


# ----------------------------------------------------------------------------- CLI end to end
_HAVE_INTEROP = importlib.util.find_spec("espnet2_sonar.beats.interop") is not None
_HAVE_AUDIO = importlib.util.find_spec("espnet2_sonar.data.audio") is not None


def _tiny_official_ckpt(path):
    from espnet2_sonar.beats.config import BeatsConfig
    from espnet2_sonar.beats.encoder import BeatsEncoder
    from espnet2_sonar.beats.interop import save_official

    with torch.random.fork_rng():
        torch.manual_seed(0)
        enc = BeatsEncoder(BeatsConfig.named("tiny"))
    return save_official(enc, path)


@pytest.mark.timeout(180)
@pytest.mark.skipif(not _HAVE_INTEROP, reason="espnet2_sonar.beats.interop (load_official/save_official) not present")
def test_cli_end_to_end(tmp_path, monkeypatch):
    from espnet2_sonar.bin.sonar_sample import main

    if not _HAVE_AUDIO:  # the audio reader is another module; stand in with soundfile until it exists
        import espnet2_sonar.sampling.embed as embed_mod

        monkeypatch.setattr(embed_mod, "default_reader", lambda sample_rate=16000: _read_sf)
    ckpt = _tiny_official_ckpt(tmp_path / "m0.pt")
    _write_corpus(tmp_path / "prior", 16, seed=0, prefix="old")
    _write_corpus(tmp_path / "new", 6, seed=1, prefix="new")
    out = tmp_path / "replay"
    args = ["--prior_dir", str(tmp_path / "prior"), "--new_dir", str(tmp_path / "new"), "--ckpt", str(ckpt)]
    args += ["--out_dir", str(out), "--num_strata", "3", "--rho", "1.0", "--seed", "4", "--no_progress"]
    main(args + ["--mix_dir", str(tmp_path / "mix")])
    scp = read_kaldi_map(out / "wav.scp")
    rep = json.loads((out / "report.json").read_text())
    assert len(scp) == 6 == rep["total_sampled"] and sorted(rep["sampled_ids"]) == list(scp)
    assert set(scp) <= set(read_kaldi_map(tmp_path / "prior" / "wav.scp"))
    assert list(read_kaldi_map(out / "utt2dur")) == list(scp)
    assert sum(s["allocated"] for s in rep["strata"]) == 6 and rep["seed"] == 4
    assert rep["embedding_dim"] == 160 and rep["num_prior"] == 16 and rep["num_new"] == 6
    assert list(read_kaldi_map(tmp_path / "mix" / "utt2source").values()).count("replay") == 6
    emb = load_cached(out / "emb_cache" / "prior")
    assert emb.embeddings.shape == (16, 160) and np.isfinite(emb.embeddings).all()
    main(args)  # re-run from the embedding caches: same replay list
    assert read_kaldi_map(out / "wav.scp") == scp


@pytest.mark.timeout(60)
@pytest.mark.skipif(not _HAVE_INTEROP, reason="espnet2_sonar.beats (BeatsEncoder) not present")
def test_embed_batch_real_encoder_padding_invariant(tmp_path):
    from espnet2_sonar.beats.interop import load_official

    enc = load_official(_tiny_official_ckpt(tmp_path / "m0.pt"))
    rng = np.random.default_rng(0)
    wavs = [(0.3 * rng.normal(size=n)).astype(np.float32) for n in (9000, 4100, 3000)]
    together = embed_batch(enc, wavs, layer=-1)
    alone = np.concatenate([embed_batch(enc, [w], layer=-1) for w in wavs])
    np.testing.assert_allclose(together, alone, atol=1e-4)
