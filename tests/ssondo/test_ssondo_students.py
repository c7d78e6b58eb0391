"""S-SONDO students, mapping head and model: shapes, padding invariance (blocks: test_nn_conv.py)."""

import pytest
import torch

from espnet2_sonar.ssondo.encoder import StudentEncoder, count_parameters
from espnet2_sonar.ssondo.head import MappingHead
from espnet2_sonar.ssondo.losses import CosineLoss
from espnet2_sonar.ssondo.model import SsondoModel
from espnet2_sonar.ssondo.students import STUDENTS, build_student

TINY = {
    "mobilenetv3": dict(width_mult=0.25, blocks=[[3, 16, 16, True, "relu", 2], [5, 32, 24, True, "hardswish", 2], [3, 48, 24, False, "hardswish", 1]], last_channels=64),
    "eres2net": dict(channels=4, num_blocks=[1, 1, 1, 1]),
    "transformer": dict(dim=32, num_layers=2, num_heads=2, ffn_dim=64, frames_per_token=4, dropout=0.0),
}


def _encoder(name: str, seed: int = 0) -> StudentEncoder:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return StudentEncoder(build_student(name, TINY[name]))


def _batch(seed: int = 0, lengths=(16000, 9000, 2500, 300)):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lengths)
    wavs = 0.1 * torch.randn(len(lengths), int(lengths.max()), generator=g)
    return wavs, lengths


def test_every_registered_student_has_a_tiny_config():
    assert set(TINY) == set(STUDENTS)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", sorted(STUDENTS))
@pytest.mark.parametrize("teacher_dim", [160, 384, 768])
def test_mapping_head_output_matches_teacher_dim(name, teacher_dim):
    student = _encoder(name)
    model = SsondoModel(student, MappingHead(student.output_size(), teacher_dim, hidden_size=48), CosineLoss())
    wavs, lengths = _batch()
    mapped = model.map(wavs, lengths)
    assert mapped.shape == (4, teacher_dim)
    teacher = torch.randn(4, teacher_dim)
    loss, stats, weight = model(speech=wavs, speech_lengths=lengths, teacher_emb=teacher)
    assert loss.numel() == 1 and torch.isfinite(loss).all() and int(weight) == 4
    with pytest.raises(ValueError, match="teacher_dim"):
        model(speech=wavs, speech_lengths=lengths, teacher_emb=torch.randn(4, teacher_dim + 1))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", sorted(STUDENTS))
def test_padding_invariance_and_lengths(name):
    """In eval mode an item's valid hidden states do not depend on the batch it is in."""
    enc = _encoder(name).eval()
    wavs, lengths = _batch()
    with torch.no_grad():
        layers = enc.extract_layers(wavs, lengths)
        valid = enc.patch_lengths(lengths)
        assert len(layers) == enc.num_layers
        for h in layers:
            assert h.shape[0] == 4 and h.shape[1] == int(valid.max()) and h.shape[2] == enc.output_size()
        for b in range(4):
            n = int(lengths[b])
            alone = enc.extract_layers(wavs[b : b + 1, :n], lengths[b : b + 1])
            assert alone[-1].shape[1] == int(valid[b])
            v = int(valid[b])
            for h, a in zip(layers, alone):
                torch.testing.assert_close(h[b, :v], a[0], atol=1e-5, rtol=1e-4)
                assert h[b, v:].abs().sum().item() == 0  # padding is zero


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", sorted(STUDENTS))
def test_training_step_updates_student_and_head(name):
    student = _encoder(name)
    model = SsondoModel(student, MappingHead(student.output_size(), 24, hidden_size=32), CosineLoss()).train()
    wavs, lengths = _batch()
    teacher = torch.randn(4, 24, generator=torch.Generator().manual_seed(1))
    loss, _, _ = model(speech=wavs, speech_lengths=lengths, teacher_emb=teacher)
    loss.backward()
    grads = {k for k, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert any(k.startswith("student.") for k in grads) and any(k.startswith("head.") for k in grads)


def test_default_students_are_at_least_ten_times_smaller_than_small_beats():
    from espnet2_sonar.beats.encoder import BeatsEncoder

    teacher = count_parameters(BeatsEncoder("small"))
    for name in STUDENTS:
        assert teacher / count_parameters(StudentEncoder(build_student(name))) >= 10, name


@pytest.mark.parametrize("name", sorted(STUDENTS))
def test_unknown_student_config_key_is_named(name):
    with pytest.raises(ValueError, match="not_a_field"):
        build_student(name, {"not_a_field": 1})
    with pytest.raises(ValueError, match="unknown student"):
        build_student("resnet9000")


def test_mapping_head_layout():
    head = MappingHead(16, 40, hidden_size=24, dropout=0.2)
    kinds = [type(m).__name__ for m in head.net]
    assert kinds == ["Linear", "Hardswish", "Dropout", "Linear"]
    assert head.net[2].p == 0.2
    with pytest.raises(ValueError):
        head(torch.randn(2, 15))
