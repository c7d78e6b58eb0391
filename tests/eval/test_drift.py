"""Representation drift (``eval.drift``, ``bin.drift``): zero on itself, layer-local, CLI."""

import json

import pytest
import torch

from sonar_fixtures import write_wav_dir


def _save(encoder, path):
    from espnet2_sonar.beats.interop import save_official

    return save_official(encoder.eval(), path)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from espnet2_sonar.beats.encoder import BeatsEncoder

    root = tmp_path_factory.mktemp("drift")
    audio = write_wav_dir(root / "audio", "a", 5, seed=0)
    torch.manual_seed(0)
    base = BeatsEncoder("tiny")
    torch.manual_seed(1)
    other = BeatsEncoder("tiny")
    # the base with only its last transformer layer's feed-forward output changed
    last_only = BeatsEncoder("tiny")
    last_only.load_state_dict(base.state_dict())
    with torch.no_grad():
        last = last_only.encoder.layers[-1]
        for p in last.parameters():
            if p.dim() == 2:
                p.add_(0.05 * torch.randn_like(p))
                break
    return {"audio": audio / "wav.scp", "base": _save(base, root / "base.pt"), "other": _save(other, root / "other.pt"),
            "last_only": _save(last_only, root / "last_only.pt")}


@pytest.mark.timeout(300)
def test_drift_is_zero_on_itself_layer_local_and_large_for_another_init(setup):
    from espnet2_sonar.eval.drift import representation_drift

    r = representation_drift(setup["base"], {"self": setup["base"], "last_only": setup["last_only"],
                                             "other": setup["other"]}, {"old": setup["audio"]}, max_clips=3)
    assert r["audio"]["old"]["clips"] == 3
    d = {name: per_set["old"]["per_layer"] for name, per_set in r["drift"].items()}
    assert d["self"] == pytest.approx([0.0] * len(d["self"]), abs=1e-6)
    # only the last layer changed: every earlier hidden state is identical
    assert d["last_only"][:-1] == pytest.approx([0.0] * (len(d["last_only"]) - 1), abs=1e-6)
    assert d["last_only"][-1] > 1e-4
    assert min(d["other"]) > d["last_only"][-1]
    assert r["drift"]["other"]["old"]["last"] == d["other"][-1]


@pytest.mark.timeout(300)
def test_cli_writes_json_and_rejects_bad_pairs(setup, tmp_path):
    from espnet2_sonar.bin import drift

    out = tmp_path / "eval" / "drift.json"
    result = drift.main(["--base", str(setup["base"]), "--ckpts", f"x={setup['other']}",
                         "--audio", f"old={setup['audio']}", "--max_clips", "2", "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    for bad in (["--ckpts", "no_equals_sign"], ["--ckpts", f"x={setup['other']} x={setup['base']}"]):
        with pytest.raises(SystemExit):
            drift.main(["--base", str(setup["base"]), "--audio", f"old={setup['audio']}", "--out", str(out)] + bad)
