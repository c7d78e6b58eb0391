"""NormEMACodebook and its seeded k-means helper: properties on tiny data (CPU)."""

import pytest
import torch
import torch.nn.functional as F

from espnet2_sonar.tokenizer.codebook import PAD_CODE, NormEMACodebook, codebook_kmeans

OFFICIAL_KEYS = {
    "embedding.weight",
    "embedding.cluster_size",
    "embedding.embed_avg",
    "embedding.initted",
    "cluster_size",
}


def _batch(seed: int, b: int = 3, n: int = 40, d: int = 8) -> torch.Tensor:
    return torch.randn(b, n, d, generator=torch.Generator().manual_seed(seed))


def _snapshot(module: torch.nn.Module) -> dict:
    return {k: v.clone() for k, v in module.state_dict().items()}


def _assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].shape == b[k].shape and torch.equal(a[k], b[k]), k


@pytest.mark.timeout(60)
def test_official_state_dict_names():
    assert set(NormEMACodebook(16, 8).state_dict()) == OFFICIAL_KEYS


@pytest.mark.timeout(60)
def test_eval_has_no_side_effects():
    cb = NormEMACodebook(16, 8)
    cb(_batch(0))  # training step: k-means init + EMA
    cb.eval()
    before = _snapshot(cb)
    out = cb(_batch(1))
    _assert_same_state(before, _snapshot(cb))
    assert out.codes.shape == (3, 40) and out.counts.sum() == 120


@pytest.mark.timeout(60)
def test_eval_uninitialised_raises():
    cb = NormEMACodebook(16, 8).eval()
    with pytest.raises(RuntimeError, match="not initialised"):
        cb(_batch(0))


@pytest.mark.timeout(60)
def test_ema_moves_used_codes_toward_data_and_leaves_unused_bit_exact():
    cb = NormEMACodebook(16, 8, decay=0.9, kmeans_init=False, seed=3)
    target = F.normalize(torch.randn(8, generator=torch.Generator().manual_seed(9)), dim=0)
    z = target + 0.05 * _batch(2)  # all features near one direction
    w0 = cb.weight.clone()
    used = cb.assign(F.normalize(z, dim=-1)).unique()
    cos0 = w0[used] @ target
    for _ in range(5):
        out = cb(z)
    cos1 = cb.weight[used] @ target
    assert (cos1 > cos0).all()
    unused = torch.ones(16, dtype=torch.bool)
    unused[out.counts > 0] = False
    unused[used] = False
    assert unused.any() and torch.equal(cb.weight[unused], w0[unused])
    assert torch.allclose(cb.weight.norm(dim=-1), torch.ones(16), atol=1e-5)


@pytest.mark.timeout(60)
def test_padding_is_ignored_by_codes_loss_and_ema():
    z = _batch(4, b=2, n=30)
    pad = torch.zeros(2, 30, dtype=torch.bool)
    pad[1, 18:] = True
    z_padded = z.clone()
    z_padded[pad] = 1e3 * torch.randn(int(pad.sum()), 8)  # garbage at padded positions

    a = NormEMACodebook(16, 8, seed=1)
    b = NormEMACodebook(16, 8, seed=1)
    out_a = a(z, pad)
    # the same valid features without padding: item 1 truncated and processed alone
    b.init_codes_(F.normalize(z[~pad], dim=-1))
    b.eval()
    out_b0 = b(z[:1])
    out_b1 = b(z[1:, :18])
    assert (out_a.codes[pad] == PAD_CODE).all()
    assert torch.equal(out_a.codes[0], out_b0.codes[0]) and torch.equal(out_a.codes[1, :18], out_b1.codes[0])
    # EMA on the padded batch equals EMA on the valid rows only
    c = NormEMACodebook(16, 8, seed=1)
    c.init_codes_(F.normalize(z[~pad], dim=-1))
    c(z_padded, pad)
    d = NormEMACodebook(16, 8, seed=1)
    d.init_codes_(F.normalize(z[~pad], dim=-1))
    d(z[~pad][None])
    torch.testing.assert_close(c.weight, d.weight, rtol=0, atol=1e-6)
    torch.testing.assert_close(c.cluster_size, d.cluster_size)
    assert torch.isclose(out_a.commitment_loss, d.eval()(z[~pad][None]).commitment_loss, atol=1e-6)


@pytest.mark.timeout(60)
def test_kmeans_init_is_seeded():
    z = _batch(5, n=100)
    cbs = [NormEMACodebook(16, 8, seed=s) for s in (7, 7, 8)]
    for cb in cbs:
        cb.init_codes_(z.reshape(-1, 8))
    assert torch.equal(cbs[0].weight, cbs[1].weight)
    assert not torch.equal(cbs[0].weight, cbs[2].weight)
    assert cbs[0].embedding.cluster_size.sum() == 300 and cbs[0].initted


@pytest.mark.timeout(60)
def test_kmeans_fewer_points_than_clusters():
    x = torch.randn(5, 4)
    a_cents, a_counts = codebook_kmeans(x, 12, seed=0, iters=10)
    b_cents, _ = codebook_kmeans(x, 12, seed=0, iters=10)
    assert a_cents.shape == (12, 4) and a_cents.dtype == torch.float32 and torch.equal(a_cents, b_cents)
    assert a_counts.shape == (12,) and int(a_counts.sum()) == 5
    assert torch.equal(a_cents[:5], F.normalize(x, dim=-1))
    with pytest.raises(ValueError, match="empty"):
        codebook_kmeans(torch.zeros(0, 4), 3, seed=0, iters=10)


@pytest.mark.timeout(60)
def test_injected_all_reduce_is_used():
    calls = []

    def doubling(t):
        calls.append(tuple(t.shape))
        return 2 * t

    z = _batch(6)
    plain = NormEMACodebook(16, 8, decay=0.9, seed=2)
    dist = NormEMACodebook(16, 8, decay=0.9, seed=2, all_reduce=doubling)
    out_p = plain(z)
    out_d = dist(z)
    assert (16,) in calls and (16, 8) in calls
    torch.testing.assert_close(out_d.counts, 2 * out_p.counts)
    torch.testing.assert_close(dist.cluster_size, 2 * plain.cluster_size)
    # means are scale-free: doubling both sums leaves the code vectors unchanged
    torch.testing.assert_close(dist.weight, plain.weight)


@pytest.mark.timeout(60)
def test_straight_through_and_commitment_loss():
    cb = NormEMACodebook(16, 8, beta=0.5, seed=0)
    z = _batch(7).requires_grad_(True)
    out = cb(z)
    unit = F.normalize(z.detach(), dim=-1)
    expected = 0.5 * (out.quantized.detach() - unit).pow(2).mean()
    assert torch.isclose(out.commitment_loss, expected, atol=1e-6)
    (out.quantized.sum() + out.commitment_loss).backward()
    assert z.grad is not None and torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
