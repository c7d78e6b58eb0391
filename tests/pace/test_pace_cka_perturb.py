"""Linear CKA and depth selection; time-frequency masks, boundary set and hinge loss."""

import pytest
import torch

from espnet2_sonar.nn.specaug import SpecAugment, SpecAugmentConfig
from espnet2_sonar.pace.cka import linear_cka, select_lora_layers
from espnet2_sonar.pace.perturb import PerturbConfig, boundary_mask, class_means, hinge_loss


@pytest.mark.timeout(30)
def test_linear_cka_invariances():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(300, 20, generator=gen)
    q, _ = torch.linalg.qr(torch.randn(20, 20, generator=gen))
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-9)
    assert linear_cka(x, 3.0 * x @ q + 5.0) == pytest.approx(1.0, abs=1e-6)  # rotation, scale, shift
    assert linear_cka(x, torch.randn(300, 20, generator=gen)) < 0.2
    partial = torch.cat([x[:, :10], torch.randn(300, 10, generator=gen)], dim=1)
    assert 0.3 < linear_cka(x, partial) < 0.9
    with pytest.raises(ValueError):
        linear_cka(x, x[:10])


@pytest.mark.timeout(30)
def test_select_lora_layers():
    s = select_lora_layers([0.99, 0.97, 0.90, 0.80, 0.70, 0.60], threshold=0.94)
    assert s.first_below == 3 and s.lora_layers == [3, 4, 5]  # deeper than layer 3 (1-based)
    assert select_lora_layers([0.99, 0.99], 0.94).lora_layers == [1]  # none below: deepest layer
    assert select_lora_layers([0.99, 0.5], 0.94).lora_layers == [1]  # only the last: still adapt it
    assert select_lora_layers([0.5, 0.5, 0.5, 0.5], 0.94, min_layers=2).lora_layers == [1, 2, 3]
    assert select_lora_layers([0.99] * 4, 0.94, min_layers=2).lora_layers == [2, 3]


@pytest.mark.timeout(30)
def test_perturbation_masks_go_through_specaug_inside_valid_frames():
    config = PerturbConfig(num_time_masks=2, time_width=5, num_freq_masks=2, freq_width=10)
    assert config.specaug() == SpecAugmentConfig(
        freq_masks=2, freq_mask_width=10, time_masks=2, time_mask_width=5, time_mask_ratio=0.0
    )
    masker = SpecAugment(config.specaug())
    fbank = torch.ones(3, 40, 128)
    fbank[1, 25:] = 7.0  # padding of item 1
    lengths = torch.tensor([40, 25, 30])
    a, _ = masker(fbank, lengths, torch.Generator().manual_seed(0))
    b, _ = masker(fbank, lengths, torch.Generator().manual_seed(0))
    c, _ = masker(fbank, lengths, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a[1, 25:], fbank[1, 25:])  # padding untouched
    assert torch.equal(fbank, torch.where(fbank == 7.0, 7.0, 1.0))  # input not modified
    masked = (a == 0).float()
    assert 0 < float(masked.mean()) < 0.5
    for i in range(3):  # every masked value is part of a full time band or a full frequency band
        m = (a[i, : int(lengths[i])] == 0)
        time_rows, freq_cols = m.all(dim=1), m.all(dim=0)
        assert torch.equal(m, time_rows[:, None] | freq_cols[None, :])
    with pytest.raises(ValueError, match=">= 0"):
        PerturbConfig(time_width=-1)


@pytest.mark.timeout(30)
def test_boundary_and_hinge():
    assert boundary_mask(torch.tensor([0.0, 0.5, 0.75, 1.0]), 0.5).tolist() == [False, False, True, True]
    means = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    feats = torch.tensor([[1.0, 0.05], [0.05, 1.0]], requires_grad=True)
    labels = torch.tensor([0, 1])
    # boundary items far from the features (other class): no loss
    far = hinge_loss(feats, labels, means, torch.tensor([[0.0, 1.0]]), torch.tensor([1]), margin=0.2)
    assert far.item() == 0.0
    # a class-1 boundary item right next to class-0 features: positive loss, gradient pushes away
    near = torch.tensor([[0.95, 0.3]])
    loss = hinge_loss(feats, labels, means, near, torch.tensor([1]), margin=0.2)
    assert loss.item() > 0
    loss.backward()
    assert float(feats.grad[0].abs().sum()) > 0 and float(feats.grad[1].abs().sum()) == 0.0
    # only boundary items of the same class: nothing to push from
    same = hinge_loss(feats, labels, means, near, torch.tensor([0]), margin=0.2)
    assert same.item() == 0.0
    empty = hinge_loss(feats, labels, means, torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), 0.2)
    assert empty.item() == 0.0
    cm = class_means(torch.tensor([[1.0, 1.0], [3.0, 1.0], [0.0, 2.0]]), torch.tensor([0, 0, 2]), 3)
    assert cm.tolist() == [[2.0, 1.0], [0.0, 0.0], [0.0, 2.0]]
