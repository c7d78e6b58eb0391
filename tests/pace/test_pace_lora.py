"""Per-session LoRA adapters and subspace-orthogonal projection."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from espnet2_sonar.beats.encoder import BeatsEncoder
from espnet2_sonar.pace.lora import LoRAConfig, LoRALinear, add_lora, add_session_, find_lora, session_parameters
from espnet2_sonar.pace.projection import ProjectionConfig, SubspaceProtector, project_out, protected_basis


def _trained_lora(sessions: int, seed: int = 0) -> LoRALinear:
    gen = torch.Generator().manual_seed(seed)
    base = nn.Linear(12, 10)
    m = LoRALinear(base, rank=3, alpha=6.0)
    for _ in range(sessions):
        m.add_session_(gen)
        with torch.no_grad():  # give B a non-zero value, as training would
            m.lora_B[-1].copy_(torch.randn(10, 3, generator=gen))
    return m


@pytest.mark.timeout(30)
def test_merged_weight_is_base_plus_session_deltas_and_merge_keeps_outputs():
    m = _trained_lora(3)
    expected = m.base.weight.detach().clone()
    for a, b in zip(m.lora_A, m.lora_B):
        expected += (6.0 / 3) * b.detach() @ a.detach()
    assert torch.allclose(m.merged_weight(), expected, atol=1e-6)
    x = torch.randn(5, 7, 12)
    y = m(x)
    assert torch.allclose(y, F.linear(x, expected, m.base.bias), atol=1e-5)
    m.merge_()
    assert m.num_sessions == 0
    assert torch.allclose(m.base.weight, expected, atol=1e-6)
    assert torch.allclose(m(x), y, atol=1e-5)


@pytest.mark.timeout(30)
def test_new_session_starts_as_identity_and_only_it_gets_gradients():
    m = _trained_lora(2)
    x = torch.randn(4, 12)
    before = m(x).detach()
    m.add_session_(torch.Generator().manual_seed(1))
    assert torch.equal(m(x).detach(), before)  # B of the new session is zero
    m(x).pow(2).sum().backward()
    for s in range(2):
        assert not m.lora_A[s].requires_grad and m.lora_A[s].grad is None
        assert not m.lora_B[s].requires_grad and m.lora_B[s].grad is None
    assert m.base.weight.grad is None and m.base.bias.grad is None
    a, b = m.current()
    assert b.grad is not None and float(b.grad.abs().sum()) > 0
    assert a.grad is not None  # zero at B = 0, but part of the graph


@pytest.mark.timeout(60)
def test_add_lora_on_encoder_keeps_outputs_and_trains_only_current_session():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        enc = BeatsEncoder("tiny").eval()
    wavs = torch.randn(2, 8000) * 0.1
    lengths = torch.tensor([8000, 6000])
    ref = enc.encode(wavs, lengths).last
    modules = add_lora(enc, [1], LoRAConfig(rank=2))
    assert sorted(modules) == [f"layers.1.{t}" for t in ("fc1", "fc2", "out_proj", "qkv_proj")]
    found = find_lora(enc)
    assert len(found) == 4 and {id(m) for m in found.values()} == {id(m) for m in modules.values()}
    enc.requires_grad_(False)
    gen = torch.Generator().manual_seed(0)
    add_session_(modules, gen)
    assert torch.allclose(enc.encode(wavs, lengths).last, ref, atol=1e-6)
    with torch.no_grad():
        for p in session_parameters(modules):
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    add_session_(modules, gen)
    params = session_parameters(modules)
    for p in params:
        p.requires_grad_(True)
    enc.encode(wavs, lengths).last.pow(2).mean().backward()
    grads = {n for n, p in enc.named_parameters() if p.grad is not None}
    assert grads == {n for n, p in enc.named_parameters() if any(p is q for q in params)}
    assert all(".lora_A.1" in n or ".lora_B.1" in n for n in grads) and len(grads) == 8


@pytest.mark.timeout(30)
def test_protected_basis_energy_ratio():
    cov = torch.diag(torch.tensor([50.0, 30.0, 15.0, 4.0, 1.0], dtype=torch.float64))
    assert protected_basis(cov, 0.80).shape == (5, 2)  # 80% of 100 -> 50 + 30
    assert protected_basis(cov, 0.95).shape == (5, 3)
    assert protected_basis(cov, 0.96).shape == (5, 4)
    assert protected_basis(cov, 1.0).shape == (5, 5)
    assert protected_basis(cov, 1.0, max_rank=2).shape == (5, 2)
    u = protected_basis(cov, 0.80)
    assert torch.allclose(u.T @ u, torch.eye(2, dtype=torch.float64), atol=1e-10)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_projected_gradients_orthogonal_and_old_inputs_unchanged(optimizer):
    gen = torch.Generator().manual_seed(0)
    m = LoRALinear(nn.Linear(16, 8), rank=4, alpha=4.0)
    m.add_session_(gen)
    # old inputs span a 5-dim subspace of the 16-dim input space
    old = torch.randn(200, 5, generator=gen) @ torch.randn(5, 16, generator=gen)
    protector = SubspaceProtector(ProjectionConfig(rho_svd=1.0, max_rank_fraction=1.0))
    protector.accumulate_("lin", old)
    ranks = protector.update_bases_()
    assert ranks == {"lin": 5}
    basis = protector.basis["lin"]
    modules = {"lin": m}
    add_session_(modules, gen)
    protector.project_init_(modules)
    a, b = m.current()
    assert float((a.detach().double() @ basis).abs().max()) < 1e-6
    ref_old = m(old.float()).detach()
    new = torch.randn(64, 16, generator=gen)
    target = torch.randn(64, 8, generator=gen)
    opt = torch.optim.SGD([a, b], lr=0.1, momentum=0.9) if optimizer == "sgd" else torch.optim.Adam([a, b], lr=0.05)
    for _ in range(20):
        opt.zero_grad()
        F.mse_loss(m(new), target).backward()
        protector.project_grads_(modules)
        assert float((a.grad.double() @ basis).abs().max()) < 1e-6 * max(1.0, float(a.grad.abs().max()))
        opt.step()
        protector.project_params_(modules)
    assert float(b.detach().abs().max()) > 0  # it did learn
    assert float((m(new).detach() - new @ m.base.weight.T - m.base.bias).abs().max()) > 1e-3
    # outputs on inputs in the protected subspace did not move
    assert torch.allclose(m(old.float()).detach(), ref_old, atol=1e-4)


@pytest.mark.timeout(30)
def test_project_out_removes_components():
    gen = torch.Generator().manual_seed(0)
    basis, _ = torch.linalg.qr(torch.randn(10, 3, generator=gen, dtype=torch.float64))
    g = torch.randn(4, 10, generator=gen, dtype=torch.float64)
    p = project_out(g, basis)
    assert float((p @ basis).abs().max()) < 1e-12
    assert torch.allclose(project_out(p, basis), p)  # idempotent
    assert torch.equal(project_out(g, basis[:, :0]), g)
