"""SsondoModel: student + mapping head + loss on cached teacher embeddings (students: tests/students/)."""

import pytest
import torch

from encoder_fixtures import tiny_student_encoder, wav_batch
from espnet2_sonar.ssondo.losses import CosineLoss
from espnet2_sonar.ssondo.model import SsondoModel
from espnet2_sonar.students.head import MappingHead
from espnet2_sonar.students.registry import STUDENTS


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", sorted(STUDENTS))
@pytest.mark.parametrize("teacher_dim", [160, 384, 768])
def test_mapping_head_output_matches_teacher_dim(name, teacher_dim):
    student = tiny_student_encoder(name)
    model = SsondoModel(student, MappingHead(student.output_size(), teacher_dim, hidden_size=48), CosineLoss())
    wavs, lengths = wav_batch()
    mapped = model.map(wavs, lengths)
    assert mapped.shape == (4, teacher_dim)
    teacher = torch.randn(4, teacher_dim)
    loss, stats, weight = model(speech=wavs, speech_lengths=lengths, teacher_emb=teacher)
    assert loss.numel() == 1 and torch.isfinite(loss).all() and int(weight) == 4
    with pytest.raises(ValueError, match="teacher_dim"):
        model(speech=wavs, speech_lengths=lengths, teacher_emb=torch.randn(4, teacher_dim + 1))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", sorted(STUDENTS))
def test_training_step_updates_student_and_head(name):
    student = tiny_student_encoder(name)
    model = SsondoModel(student, MappingHead(student.output_size(), 24, hidden_size=32), CosineLoss()).train()
    wavs, lengths = wav_batch()
    teacher = torch.randn(4, 24, generator=torch.Generator().manual_seed(1))
    loss, _, _ = model(speech=wavs, speech_lengths=lengths, teacher_emb=teacher)
    loss.backward()
    grads = {k for k, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert any(k.startswith("student.") for k in grads) and any(k.startswith("head.") for k in grads)
