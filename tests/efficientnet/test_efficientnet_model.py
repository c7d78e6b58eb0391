"""DECAR's log-mel EfficientNet: log-mel frontend and encoder shapes, padding invariance, config checks."""

import pytest
import torch

from encoder_fixtures import wav_batch
from espnet2_sonar.efficientnet.config import EfficientNetConfig
from espnet2_sonar.efficientnet.logmel import LogMelFrontend
from espnet2_sonar.efficientnet.model import EfficientNetEncoder

torch.set_num_threads(1)


LENGTHS = (16000, 9000, 3000)


@pytest.mark.timeout(60)
def test_logmel_shapes_and_padding_invariance():
    fe = LogMelFrontend()
    wavs, lengths = wav_batch(lengths=LENGTHS)
    wavs[1, 9000:] = 5.0  # garbage in the padding must not matter
    out = fe(wavs, lengths)
    assert out.feats.shape == (3, 98, 64)
    assert out.frame_lengths.tolist() == [98, 54, 17]  # 1 + (T - 400) // 160
    for i, n in enumerate(lengths.tolist()):
        alone = fe(wavs[i : i + 1, :n], lengths[i : i + 1])
        torch.testing.assert_close(out.feats[i, : out.frame_lengths[i]], alone.feats[0])
        assert (out.feats[i, out.frame_lengths[i] :] == 0).all()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("arch", ["tiny", "b0"])
def test_efficientnet_padding_invariant_and_probe_interface(arch):
    enc = EfficientNetEncoder(arch).eval()
    wavs, lengths = wav_batch(lengths=LENGTHS)
    with torch.no_grad():
        layers = enc.extract_layers(wavs, lengths)
        steps = enc.patch_lengths(lengths)
        assert len(layers) == 1 and layers[0].shape == (3, int(steps.max()), enc.output_size())
        for i, n in enumerate(lengths.tolist()):
            alone = enc.extract_layers(wavs[i : i + 1, :n], lengths[i : i + 1])[0]
            assert alone.shape[1] == steps[i]
            torch.testing.assert_close(layers[0][i, : steps[i]], alone[0], rtol=1e-4, atol=1e-5)
    assert enc.output_size() == (1280 if arch == "b0" else 320)


@pytest.mark.timeout(30)
def test_unknown_config_keys_are_errors():
    with pytest.raises(ValueError, match="widht_mult"):
        EfficientNetConfig.named("tiny", widht_mult=0.5)
