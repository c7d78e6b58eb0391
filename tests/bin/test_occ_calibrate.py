"""``bin.occ_calibrate``: best-cosine statistics per pool and the suggested novelty threshold."""

import json

import numpy as np
import pytest
import soundfile as sf

from sonar_fixtures import make_official_checkpoints, write_wav_dir


def _tokenizer_covering(clip_dir, ckpt, out):
    """The tokenizer of ``ckpt`` with its first codes set to the features of ``clip_dir``'s clips."""
    import torch

    from espnet2_sonar.tokenizer.interop import load_official_tokenizer, save_official_tokenizer
    from espnet2_sonar.data.audio import load_audio
    from espnet2_sonar.tokenizer.codebook import l2norm

    tok = load_official_tokenizer(ckpt).eval()
    feats = []
    for line in (clip_dir / "wav.scp").read_text().splitlines():
        wav = torch.as_tensor(load_audio(line.split(maxsplit=1)[1])[0][:64000])
        with torch.no_grad():
            feats.append(tok.features(wav[None], torch.tensor([wav.numel()])).features[0])
    feats = torch.cat(feats)
    assert feats.shape[0] <= tok.quantize.weight.shape[0]
    with torch.no_grad():
        tok.quantize.weight[: feats.shape[0]] = l2norm(feats)
    return save_official_tokenizer(tok, out)


@pytest.mark.timeout(300)
def test_calibration_finds_covered_audio_at_cosine_one_and_flags_the_rest(tmp_path):
    from espnet2_sonar.bin import occ_calibrate

    prior = write_wav_dir(tmp_path / "prior", "p", 1, seed=0, seconds=(1.0,))
    ckpt = make_official_checkpoints(tmp_path / "ckpt", prior)
    tokenizer = _tokenizer_covering(prior, ckpt["tokenizer"], tmp_path / "covering.pt")
    noise = tmp_path / "noise"  # white noise: not among the codes
    noise.mkdir()
    rng = np.random.default_rng(0)
    lines = []
    for i in range(3):
        sf.write(noise / f"n{i}.wav", 0.3 * rng.standard_normal(24000).astype("float32"), 16000)
        lines.append(f"n{i} {noise / f'n{i}.wav'}\n")
    (noise / "wav.scp").write_text("".join(lines))
    out = tmp_path / "calib.json"
    result = occ_calibrate.main(["--tokenizer", str(tokenizer), "--pool_dir", str(prior),
                                 "--pool_dir", str(noise), "--quantile", "0.1", "--out", str(out)])
    assert json.loads(out.read_text()) == result
    p, n = result["pools"][str(prior)], result["pools"][str(noise)]
    # every prior feature is a code: best cosine 1, nothing below any threshold < 1
    assert p["percentiles"]["1"] == pytest.approx(1.0, abs=1e-4)
    assert result["suggested_novelty_threshold"] == pytest.approx(1.0, abs=1e-4)
    assert all(share == 0.0 for share in p["share_below"].values())
    # the noise is strictly further away, and monotone in the threshold
    assert n["percentiles"]["50"] < 1.0 - 1e-4 and n["share_below_suggested"] > 0.5
    shares = [n["share_below"][str(t)] for t in occ_calibrate.THRESHOLDS]
    assert shares == sorted(shares)


def test_missing_pool_is_named(tmp_path):
    from espnet2_sonar.bin import occ_calibrate

    prior = write_wav_dir(tmp_path / "prior", "p", 2, seed=0)
    ckpt = make_official_checkpoints(tmp_path / "ckpt", prior)
    with pytest.raises(FileNotFoundError, match="nowhere/wav.scp"):
        occ_calibrate.main(["--tokenizer", str(ckpt["tokenizer"]), "--pool_dir", str(tmp_path / "nowhere")])
