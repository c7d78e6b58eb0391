"""S-SONDO embedding losses: zeros, ranges, invariances, per-item shapes."""

import pytest
import torch

from espnet2_sonar.ssondo.losses import LOSSES, CosineLoss, KLLoss, L1Loss, MSELoss


def _pair(seed=0, b=5, d=12):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, d, generator=g), torch.randn(b, d, generator=g)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_per_item_shape_zero_on_agreement_and_positive_otherwise(name):
    loss = LOSSES[name]()
    s, t = _pair()
    out = loss(s, t)
    assert out.shape == (5,)
    assert (out > 0).all()
    torch.testing.assert_close(loss(t, t), torch.zeros(5), atol=1e-6, rtol=0)
    with pytest.raises(ValueError):
        loss(s, t[:, :-1])


def test_cosine_is_scale_invariant_and_bounded():
    s, t = _pair()
    loss = CosineLoss()
    torch.testing.assert_close(loss(3.0 * s, t), loss(s, t))
    torch.testing.assert_close(loss(-t, t), torch.full((5,), 2.0))
    assert ((loss(s, t) >= 0) & (loss(s, t) <= 2)).all()


def test_mse_and_l1_values():
    s = torch.tensor([[1.0, 2.0, 3.0]])
    t = torch.tensor([[1.0, 0.0, 6.0]])
    torch.testing.assert_close(MSELoss()(s, t), torch.tensor([(0 + 4 + 9) / 3]))
    torch.testing.assert_close(L1Loss()(s, t), torch.tensor([(0 + 2 + 3) / 3]))


def test_kl_matches_torch_kl_div_and_ignores_shift():
    s, t = _pair()
    for temp in (1.0, 2.0):
        ref = torch.nn.functional.kl_div(
            torch.log_softmax(s / temp, -1), torch.log_softmax(t / temp, -1), reduction="none", log_target=True
        ).sum(-1) * temp**2
        torch.testing.assert_close(KLLoss(temp)(s, t), ref)
    torch.testing.assert_close(KLLoss()(s + 5.0, t), KLLoss()(s, t))  # softmax ignores a constant shift
    with pytest.raises(ValueError):
        KLLoss(0.0)


def test_gradients_flow_to_the_student_only():
    s, t = _pair()
    s.requires_grad_(True)
    for name, cls in LOSSES.items():
        s.grad = None
        cls()(s, t).mean().backward()
        assert s.grad is not None and s.grad.abs().sum() > 0, name
