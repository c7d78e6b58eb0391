"""Tests of task-relevant stratified sampling (espnet2_sonar.sampling.stratified) and the
sampling CLI (bin/sonar_sample): allocation formula, relevance, seeded draws, end to end."""

import json
import math

import numpy as np
import pytest

from espnet2_sonar.sampling.embed import load_cached
from espnet2_sonar.sampling.mixing import read_kaldi_map
from espnet2_sonar.sampling.stratified import (
    StratifiedSamplerConfig,
    allocate,
    replay_budget,
    stratified_sample,
    stratum_relevance,
)
from sonar_fixtures import random_official_encoder, write_wav_dir

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



# ----------------------------------------------------------------------------- CLI end to end
@pytest.mark.timeout(180)
def test_cli_end_to_end(tmp_path):
    from espnet2_sonar.bin.sonar_sample import main

    ckpt = random_official_encoder(tmp_path / "m0.pt")
    write_wav_dir(tmp_path / "prior", "old", 16, seed=0, seconds=(0.3, 0.5, 0.7))
    write_wav_dir(tmp_path / "new", "new", 6, seed=1, seconds=(0.3, 0.5, 0.7))
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


@pytest.mark.timeout(30)
def test_cli_options_are_the_config_fields():
    """Every StratifiedSamplerConfig field is an option of that name, with the field's default,
    type and docstring; parsed options rebuild the config."""
    import dataclasses

    from espnet2_sonar.bin.sonar_sample import get_parser
    from espnet2_sonar.utils.cli import config_from_args, field_docs

    parser = get_parser()
    required = ["--prior_dir", "p", "--new_dir", "n", "--ckpt", "c", "--out_dir", "o"]
    assert config_from_args(StratifiedSamplerConfig, parser.parse_args(required)) == StratifiedSamplerConfig()
    options = {a.dest: a for a in parser._actions}
    docs = field_docs(StratifiedSamplerConfig)
    for f in dataclasses.fields(StratifiedSamplerConfig):
        assert options[f.name].default == f.default and options[f.name].help == docs[f.name], f.name
    assert options["relevance"].choices == ("nearest", "softmax")
    args = parser.parse_args(required + ["--normalize", "false", "--relevance", "softmax", "--num_strata", "32",
                                         "--rho", "0.25"])
    assert config_from_args(StratifiedSamplerConfig, args) == StratifiedSamplerConfig(
        normalize=False, relevance="softmax", num_strata=32, rho=0.25
    )
    with pytest.raises(SystemExit):
        parser.parse_args(required + ["--relevance", "nearestt"])


