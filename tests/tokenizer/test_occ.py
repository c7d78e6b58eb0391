"""Online clustered codebook: re-anchoring, protection, expansion, resume, collectives."""

import threading

import pytest
import torch
import torch.nn.functional as F

from espnet2_sonar.tokenizer.codebook import PAD_CODE, NormEMACodebook
from espnet2_sonar.tokenizer.occ import OCCConfig, OnlineClusteredCodebook


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _cluster(direction: torch.Tensor, n: int, spread: float, seed: int) -> torch.Tensor:
    """[1, n, d] unit features scattered around ``direction``."""
    x = direction + spread * torch.randn(n, direction.numel(), generator=_gen(seed))
    return F.normalize(x, dim=-1)[None]


def _assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].shape == sb[k].shape and torch.equal(sa[k], sb[k]), k


@pytest.mark.timeout(60)
def test_config_rejects_unknown_keys():
    with pytest.raises(ValueError, match="novelty_treshold"):
        OCCConfig.from_dict({"novelty_treshold": 0.3})
    with pytest.raises(ValueError, match="max_codes"):
        OCCConfig(num_codes=16, max_codes=8)


@pytest.mark.timeout(60)
def test_eval_has_no_side_effects():
    occ = OnlineClusteredCodebook(OCCConfig(num_codes=8, dim=4, expand_every=1, max_codes=16))
    occ(torch.randn(2, 20, 4, generator=_gen(0)))
    occ.eval()
    before = {k: v.clone() for k, v in occ.state_dict().items()}
    occ(torch.randn(2, 20, 4, generator=_gen(1)) + 5.0, replay_mask=torch.tensor([True, False]))
    after = occ.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before) and before.keys() == after.keys()


@pytest.mark.timeout(60)
def test_dead_codes_come_back_while_protected_codes_stay_put():
    d = 4
    e = torch.eye(d)
    cfg = OCCConfig(
        num_codes=12, dim=d, decay=0.9, usage_decay=0.5, dead_usage_threshold=0.05,
        kmeans_init=False, expand_every=0, max_codes=12,
    )
    occ = OnlineClusteredCodebook(cfg)
    w = torch.cat(
        [
            _cluster(e[0], 4, 0.05, seed=1)[0],  # 0-3: old-domain codes, protected
            _cluster(e[0], 4, 0.05, seed=2)[0],  # 4-7: old-domain codes, unprotected
            torch.stack([e[1], -e[1], e[2], -e[2]]),  # 8-11: what the shifted data reaches first
        ]
    )
    occ.embedding.weight.copy_(w)
    occ.protect_codes_(torch.tensor([0, 1, 2, 3, PAD_CODE]))
    assert occ.protected.tolist() == [True] * 4 + [False] * 8

    shifted = -e[0]
    usage_seen = torch.zeros(12)
    reanchored = 0
    for step in range(30):
        # shifted domain: around -e0, spread only orthogonal to e0 (never near the old codes)
        z = -e[0] + 0.6 * torch.randn(64, d, generator=_gen(100 + step)) * (1 - e[0])
        out = occ(z[None])
        reanchored += out.reanchored
        if step >= 25:
            usage_seen += out.counts
    assert torch.equal(occ.weight[:4], w[:4]), "protected codes moved"
    assert occ.dead_codes()[:4].all(), "protected codes are unused by the shifted data"
    assert reanchored > 0
    revived = usage_seen[4:8]
    assert (revived > 0).all(), f"dead unprotected codes not revived: {revived.tolist()}"
    assert (occ.weight[4:8] @ shifted > 0).all()
    assert not occ.dead_codes()[4:].any()


@pytest.mark.timeout(60)
def test_replay_usage_protects_codes():
    d = 4
    e = torch.eye(d)
    cfg = OCCConfig(num_codes=8, dim=d, kmeans_init=False, usage_decay=0.5, protect_threshold=0.5,
                    expand_every=0, max_codes=8)
    occ = OnlineClusteredCodebook(cfg)
    occ.embedding.weight.copy_(torch.cat([e, -e]))
    replay = _cluster(e[0], 32, 0.1, seed=3)  # replay items live near code 0
    new = _cluster(e[1], 32, 0.1, seed=4)  # new items near code 1
    for _ in range(3):
        occ(torch.cat([replay, new]), replay_mask=torch.tensor([True, False]))
    assert occ.protected.tolist() == [True] + [False] * 7


@pytest.mark.timeout(60)
def test_expansion_appends_codes_and_keeps_old_ones():
    d = 8
    e = torch.eye(d)
    cfg = OCCConfig(num_codes=8, dim=d, expand_codes=4, max_codes=14, expand_every=0,
                    novelty_threshold=0.5, expand_trigger=0.3, seed=5)
    occ = OnlineClusteredCodebook(cfg)
    old = torch.cat([_cluster(e[i], 40, 0.1, seed=i) for i in range(4)], dim=1)  # [1, 160, d]
    occ(old)  # k-means init on the old domain
    occ.eval()
    w_old = occ.weight.clone()
    old_codes = occ(old).codes
    new = torch.cat([_cluster(e[i], 40, 0.1, seed=10 + i) for i in range(4, 8)], dim=1)

    assert occ.expand_(old[0]) == 0, "familiar features must not trigger expansion"
    assert float(occ.novel_share(new[0])) > 0.9
    assert occ.expand_(new[0]) == 4 and occ.num_codes == 12
    assert torch.equal(occ.weight[:8], w_old)
    assert torch.equal(occ(old).codes, old_codes)
    assert (occ(new).codes >= 8).float().mean() > 0.9
    assert occ.usage.shape == (12,) and occ.protected.shape == (12,)
    # capped at max_codes
    far = _cluster(-e.sum(0), 50, 0.1, seed=20)[0]
    assert occ.expand_(far) == 2 and occ.num_codes == 14
    assert occ.expand_(_cluster(-e[0], 50, 0.1, seed=21)[0]) == 0


@pytest.mark.timeout(60)
def test_state_after_expansion_resumes_in_fresh_small_module():
    d = 6
    cfg = OCCConfig(num_codes=6, dim=d, expand_codes=3, max_codes=15, expand_every=2,
                    usage_decay=0.6, dead_usage_threshold=0.2, seed=11)

    def batch(step):
        g = _gen(1000 + step)
        shift = 3.0 * torch.eye(d)[step % d] if step >= 2 else torch.zeros(d)
        return torch.randn(4, 12, d, generator=g) + shift, torch.tensor([True, False, False, True])

    pad = torch.zeros(4, 12, dtype=torch.bool)
    pad[2, 7:] = True
    original = OnlineClusteredCodebook(cfg)
    for step in range(6):
        z, replay = batch(step)
        original(z, pad, replay)
    assert original.num_codes > 6

    fresh = OnlineClusteredCodebook(cfg)
    fresh.load_state_dict({k: v.clone() for k, v in original.state_dict().items()})
    assert fresh.num_codes == original.num_codes
    _assert_same_state(original, fresh)
    for step in range(6, 12):
        z, replay = batch(step)
        a = original(z, pad, replay)
        b = fresh(z, pad, replay)
        assert torch.equal(a.codes, b.codes) and a.added == b.added and a.reanchored == b.reanchored
    _assert_same_state(original, fresh)

    tiny = OnlineClusteredCodebook(OCCConfig(num_codes=6, dim=d, max_codes=8))
    with pytest.raises(ValueError, match="max_codes"):
        tiny.load_state_dict(original.state_dict())


@pytest.mark.timeout(60)
def test_injected_collectives_are_used():
    calls = []

    def doubling(t):
        calls.append(("all_reduce", tuple(t.shape)))
        return 2 * t

    rank0_anchor = F.normalize(-torch.ones(4), dim=0)  # far from the local data

    def from_rank0(t):
        calls.append(("broadcast", tuple(t.shape)))
        return rank0_anchor.expand_as(t).clone() if t.shape[0] == 1 else t

    cfg = OCCConfig(num_codes=4, dim=4, kmeans_init=False, usage_decay=0.5, decay=0.9,
                    dead_usage_threshold=0.5, expand_every=0, max_codes=4)
    occ = OnlineClusteredCodebook(cfg, all_reduce=doubling, broadcast=from_rank0)
    plain = OnlineClusteredCodebook(cfg)
    w = torch.cat([torch.eye(4)[:3], -torch.eye(4)[:1]])
    occ.embedding.weight.copy_(w)
    plain.embedding.weight.copy_(w)
    z = _cluster(torch.eye(4)[0] + torch.eye(4)[1] + torch.eye(4)[2], 30, 0.3, seed=1)
    out, ref = occ(z), plain(z)
    torch.testing.assert_close(out.counts, 2 * ref.counts)
    torch.testing.assert_close(occ.cluster_size, 2 * plain.cluster_size)
    torch.testing.assert_close(occ.usage, plain.usage)  # shares are scale-free
    for _ in range(10):
        occ(z)
    assert ("broadcast", (1, 4)) in calls and ("all_reduce", (4,)) in calls
    # the dead code 3 (at -e0) was pulled toward rank 0's anchor, not toward a local sample
    assert float(occ.weight[3] @ rank0_anchor) > 0.99


@pytest.mark.timeout(60)
def test_from_codebook_copies_codes_and_usage():
    cb = NormEMACodebook(8, 4, seed=0)
    cb(torch.randn(2, 30, 4, generator=_gen(0)))
    occ = OnlineClusteredCodebook.from_codebook(cb, {"max_codes": 12, "expand_every": 0})
    assert occ.num_codes == 8 and torch.equal(occ.weight, cb.weight)
    torch.testing.assert_close(occ.usage, cb.cluster_size / cb.cluster_size.sum())
    cb.eval()
    occ.eval()
    z = torch.randn(2, 10, 4, generator=_gen(1))
    assert torch.equal(cb(z).codes, occ(z).codes)


class _TwoRanks:
    """In-process stand-in for two DDP ranks: collectives meet at a barrier (threads)."""

    def __init__(self):
        self.barrier = threading.Barrier(2, timeout=30)
        self.slots = [None, None]

    def _exchange(self, rank, t, combine):
        self.slots[rank] = t.clone()
        self.barrier.wait()
        out = combine(self.slots)
        self.barrier.wait()
        return out

    def all_reduce(self, rank):
        return lambda t: self._exchange(rank, t, lambda s: s[0] + s[1])

    def broadcast(self, rank):
        return lambda t: self._exchange(rank, t, lambda s: s[0].clone())

    def run(self, fn):
        errors = []

        def target(rank):
            try:
                fn(rank)
            except BaseException as err:  # noqa: BLE001 - surfaced below
                errors.append(err)
                self.barrier.abort()

        threads = [threading.Thread(target=target, args=(r,)) for r in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]


@pytest.mark.timeout(60)
def test_two_ranks_hold_identical_online_codebooks():
    cfg = OCCConfig(num_codes=8, dim=4, expand_codes=3, max_codes=20, expand_every=2, usage_decay=0.6,
                    dead_usage_threshold=0.3, novelty_threshold=0.97, expand_trigger=0.1, seed=2)
    world = _TwoRanks()
    ranks = [
        OnlineClusteredCodebook(cfg, all_reduce=world.all_reduce(r), broadcast=world.broadcast(r)) for r in (0, 1)
    ]
    stats = [[], []]

    def train(rank):
        for step in range(8):
            shift = torch.eye(4)[(step + rank) % 4] * (3.0 if step >= 3 else 0.0)
            z = torch.randn(2, 10 + 5 * rank, 4, generator=_gen(100 * rank + step)) + shift
            out = ranks[rank](z, replay_mask=torch.tensor([rank == 0, step % 2 == 0]))
            stats[rank].append((out.counts.clone(), out.added, out.reanchored))

    world.run(train)
    assert ranks[0].num_codes > 8, "expansion should have happened"
    assert sum(s[2] for s in stats[0]) > 0, "re-anchoring should have happened"
    _assert_same_state(ranks[0], ranks[1])
    for a, b in zip(*stats):
        assert torch.equal(a[0], b[0]) and a[1:] == b[1:]


@pytest.mark.timeout(60)
def test_two_rank_ema_equals_one_process_on_the_joint_batch():
    init = F.normalize(torch.randn(40, 4, generator=_gen(0)), dim=-1)
    z = torch.randn(2, 12, 4, generator=_gen(1))
    world = _TwoRanks()
    ranks = [NormEMACodebook(6, 4, decay=0.8, all_reduce=world.all_reduce(r), broadcast=world.broadcast(r))
             for r in (0, 1)]
    single = NormEMACodebook(6, 4, decay=0.8)
    for cb in [*ranks, single]:
        cb.embedding.weight.copy_(init[:6])
        cb.embedding.initted.fill_(1.0)

    def train(rank):
        for _ in range(3):
            ranks[rank](z[rank : rank + 1])

    world.run(train)
    for _ in range(3):
        single(z)
    for cb in ranks:
        torch.testing.assert_close(cb.weight, single.weight, rtol=0, atol=1e-6)
        torch.testing.assert_close(cb.cluster_size, single.cluster_size)
