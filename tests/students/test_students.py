"""S-SONDO student backbones, encoder and mapping head: shapes, padding invariance (blocks: test_nn_conv.py)."""

import subprocess
import sys

import pytest
import torch

from encoder_fixtures import TINY, tiny_student_encoder, wav_batch
from espnet2_sonar.students.encoder import StudentEncoder, count_parameters
from espnet2_sonar.students.file import ExportedStudent, load_student, student_checkpoint
from espnet2_sonar.students.head import MappingHead
from espnet2_sonar.students.registry import STUDENTS, build_student


def test_every_registered_student_has_a_tiny_config():
    assert set(TINY) == set(STUDENTS)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", sorted(STUDENTS))
def test_padding_invariance_and_lengths(name):
    """In eval mode an item's valid hidden states do not depend on the batch it is in."""
    enc = tiny_student_encoder(name).eval()
    wavs, lengths = wav_batch()
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


@pytest.mark.timeout(120)
def test_a_student_file_loads_through_the_probe_loader_without_importing_ssondo(tmp_path):
    """``student_checkpoint`` -> file -> ``load_student`` gives the same outputs; the
    ``ssondo_student`` kind is registered by the model family, not by S-SONDO."""
    head_conf = dict(input_size=tiny_student_encoder("eres2net").output_size(), output_size=24, hidden_size=32, dropout=0.2)
    model = ExportedStudent(tiny_student_encoder("eres2net"), MappingHead(**head_conf)).eval()
    ckpt = student_checkpoint(model, "eres2net", TINY["eres2net"], head_conf, {"seed": 0})
    assert list(ckpt) == ["kind", "version", "student", "student_conf", "fbank_mean", "fbank_std", "head", "features", "model", "meta"]
    torch.save(ckpt, tmp_path / "student.pt")
    wavs, lengths = wav_batch()
    with torch.no_grad():
        for a, b in zip(model.extract_layers(wavs, lengths), load_student(tmp_path / "student.pt").extract_layers(wavs, lengths)):
            assert torch.equal(a, b)
    code = (
        "import sys; from espnet2_sonar.eval.checkpoints import load_encoder; enc = load_encoder(sys.argv[1]); "
        "print(type(enc).__name__, sorted(m for m in sys.modules if m.startswith(('espnet2_sonar.decar', 'espnet2_sonar.ssondo'))))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "student.pt")], capture_output=True, text=True, timeout=110)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "ExportedStudent []"
