"""DECAR EfficientNet files written before the shared squeeze-excite (``se.reduce``/``se.expand``) still load."""

import subprocess
import sys

import pytest
import torch

from espnet2_sonar.efficientnet.file import KIND, upgrade_efficientnet_state
from espnet2_sonar.efficientnet.interop import efficientnet_checkpoint, efficientnet_from_checkpoint
from espnet2_sonar.efficientnet.model import EfficientNetEncoder


def _old_layout(state):
    """The state dict as the EfficientNet wrote it before its blocks moved to nn/conv.py."""
    old = {}
    for k, v in state.items():
        old[k.replace(".se.fc1.", ".se.reduce.").replace(".se.fc2.", ".se.expand.")] = v
    return old


def _encoder():
    torch.manual_seed(0)
    enc = EfficientNetEncoder("tiny")
    for m in enc.modules():  # non-trivial running statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return enc.eval()


def test_upgrade_renames_only_squeeze_excite_keys():
    state = _encoder().state_dict()
    old = _old_layout(state)
    assert "blocks.1.se.reduce.weight" in old and "blocks.1.expand.conv.weight" in old
    assert list(upgrade_efficientnet_state(old)) == list(state)  # same keys, same order
    assert list(upgrade_efficientnet_state(state)) == list(state)  # current files unchanged


@pytest.mark.timeout(60)
def test_an_old_layout_file_loads_and_gives_the_same_outputs(tmp_path):
    from espnet2_sonar.eval.checkpoints import load_encoder

    enc = _encoder()
    ckpt = efficientnet_checkpoint(enc)
    ckpt["model"] = _old_layout(ckpt["model"])
    assert ckpt["kind"] == KIND and any(".se.reduce." in k for k in ckpt["model"])
    path = tmp_path / "old.pt"
    torch.save(ckpt, path)
    wavs = torch.randn(2, 12000, generator=torch.Generator().manual_seed(1))
    lengths = torch.tensor([12000, 7000])
    with torch.no_grad():
        ref = enc(wavs, lengths)[0]
        for loaded in (
            efficientnet_from_checkpoint(ckpt, "old"),
            EfficientNetEncoder(init=str(path)).eval(),
            load_encoder(path),
        ):
            assert torch.equal(loaded(wavs, lengths)[0], ref)


@pytest.mark.timeout(120)
def test_the_probe_loader_reads_the_file_without_importing_decar(tmp_path):
    """The ``decar_efficientnet`` kind is registered by the model family, not by DECAR."""
    torch.save(efficientnet_checkpoint(_encoder()), tmp_path / "cnn.pt")
    code = (
        "import sys; from espnet2_sonar.eval.checkpoints import load_encoder; enc = load_encoder(sys.argv[1]); "
        "print(type(enc).__name__, sorted(m for m in sys.modules if m.startswith(('espnet2_sonar.decar', 'espnet2_sonar.ssondo'))))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "cnn.pt")], capture_output=True, text=True, timeout=110)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "EfficientNetEncoder []"


def test_a_whole_model_checkpoint_of_the_old_layout_loads_strictly():
    """An ESPnet checkpoint of a whole DECAR model written before the shared squeeze-excite
    (a resumed run, ``--init_param``): keys under ``encoder.`` are renamed on load."""
    enc = _encoder()
    whole = torch.nn.Module()
    whole.encoder = EfficientNetEncoder("tiny")
    whole.head = torch.nn.Linear(2, 2)
    state = {f"encoder.{k}": v for k, v in _old_layout(enc.state_dict()).items()}
    state.update({f"head.{k}": v for k, v in whole.head.state_dict().items()})
    assert any(".se.reduce." in k for k in state)
    whole.load_state_dict(state, strict=True)
    for k, v in enc.state_dict().items():
        assert torch.equal(whole.encoder.state_dict()[k], v), k
    with pytest.raises(RuntimeError, match="se.squeeze"):  # other unknown keys still fail
        whole.load_state_dict({**state, "encoder.blocks.1.se.squeeze.weight": torch.zeros(1)}, strict=True)
