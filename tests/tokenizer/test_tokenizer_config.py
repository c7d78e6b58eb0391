"""BeatsTokenizerConfig: nested ``encoder: BeatsConfig`` form <-> the official flat cfg layout.

The flat layout is what checkpoints hold (microsoft/unilm's ``Tokenizers.py`` reads it); the
nested form is what ``to_dict`` / YAML use. ``--tokenizer_conf config`` accepts both.
"""

from pathlib import Path

import pytest
import torch
import yaml

from espnet2_sonar.beats.config import ARCHITECTURES, BeatsConfig
from espnet2_sonar.beats.encoder import BeatsEncoder
from espnet2_sonar.beats.interop import save_official
from espnet2_sonar.tokenizer.interop import official_tokenizer_checkpoint
from espnet2_sonar.tokenizer.tokenizer import (
    ENCODER_FLAT_KEYS,
    FLAT_KEYS,
    OFFICIAL_KEYS,
    BeatsTokenizer,
    BeatsTokenizerConfig,
)

REPO = Path(__file__).resolve().parents[2]

# cfg of the released Tokenizer_iter3 checkpoints: the official TokenizersConfig keys only
OFFICIAL_ITER3_CFG = dict(
    {k: v for k, v in ARCHITECTURES["base"].items() if k in OFFICIAL_KEYS}, quant_n=1024, quant_dim=256
)


def test_official_cfg_round_trips_flat_nested_flat():
    assert set(OFFICIAL_ITER3_CFG) == set(OFFICIAL_KEYS)
    config = BeatsTokenizerConfig.from_flat(OFFICIAL_ITER3_CFG)
    assert config.encoder == BeatsConfig.named("base", layer_wise_gradient_decay_ratio=1.0)
    assert (config.quant_n, config.quant_dim) == (1024, 256)
    flat = config.to_flat()
    assert list(flat) == list(FLAT_KEYS)
    assert {k: flat[k] for k in OFFICIAL_ITER3_CFG} == OFFICIAL_ITER3_CFG


@pytest.mark.parametrize("codebook", ["norm_ema", "occ"])
def test_saved_cfg_round_trips_exactly(codebook):
    config = BeatsTokenizerConfig.named(
        "tiny", quant_n=16, quant_dim=8, codebook=codebook, seed=3, encoder={"dropout": 0.1, "fbank_mean": 14.0}
    )
    cfg = official_tokenizer_checkpoint(BeatsTokenizer(config))["cfg"]
    assert list(cfg) == list(FLAT_KEYS)  # the official layout, in order
    back = BeatsTokenizerConfig.from_flat(cfg)
    assert back == config and back.to_flat() == cfg
    assert list(back.to_flat().items()) == list(cfg.items())
    assert BeatsTokenizerConfig.from_dict(config.to_dict()) == config  # nested round trip


def test_flat_and_nested_overrides_agree():
    flat = BeatsTokenizerConfig.named("tiny", encoder_layers=1, dropout=0.1, fbank_std=5.0, quant_n=16)
    nested = BeatsTokenizerConfig.named(
        "tiny", encoder={"encoder_layers": 1, "dropout": 0.1, "fbank_std": 5.0}, quant_n=16
    )
    assert flat == nested
    # nested encoder fields override the architecture's field by field
    assert nested.encoder == BeatsConfig.named("tiny", encoder_layers=1, dropout=0.1, fbank_std=5.0)
    assert set(ENCODER_FLAT_KEYS) == set(FLAT_KEYS) - {f for f in FLAT_KEYS if hasattr(nested, f)}


@pytest.mark.parametrize(
    "build, key",
    [
        (lambda: BeatsTokenizerConfig.from_flat({"dropoutt": 0.1}), "dropoutt"),
        (lambda: BeatsTokenizerConfig.from_flat({"finetuned_model": False}), "finetuned_model"),
        (lambda: BeatsTokenizerConfig.named("tiny", dropoutt=0.1), "dropoutt"),
        (lambda: BeatsTokenizerConfig.from_dict({"quant_num": 3}), "quant_num"),
        (lambda: BeatsTokenizerConfig.from_dict({"dropout": 0.1}), "dropout"),  # flat key in the nested form
        (lambda: BeatsTokenizerConfig.from_dict({"encoder": {"dropoutt": 0.1}}), "dropoutt"),
        (lambda: BeatsTokenizerConfig.named("tiny", encoder={"dropoutt": 0.1}), "dropoutt"),
        (lambda: BeatsTokenizerConfig.named("tiny", encoder={}, quant_num=3), "quant_num"),
        (lambda: BeatsTokenizerConfig.named("tiny", encoder={}, dropout=0.1), "dropout"),  # mixed forms
        (lambda: BeatsTokenizerConfig.from_dict({"encoder": {"predictor_class": 10}}), "predictor_class"),
        (lambda: BeatsTokenizerConfig.from_flat({"encoder": {}}), "encoder"),
    ],
)
def test_unknown_or_misplaced_keys_raise_naming_them(build, key):
    with pytest.raises(ValueError, match=rf"'{key}'"):
        build()


# ---------------------------------------------------------------- --tokenizer_conf config
def _teacher(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    return save_official(BeatsEncoder(BeatsConfig.named("tiny")).eval(), tmp_path / "teacher.pt")


def _build(tmp_path: Path, name: str, config: dict, teacher: Path):
    from espnet2_sonar.tasks.tokenizer import TokenizerTask

    conf = yaml.safe_load((REPO / "conf" / "tiny" / "tokenizer.yaml").read_text())
    conf["tokenizer_conf"] = dict(conf["tokenizer_conf"], teacher=str(teacher), config=config)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(conf))
    args = TokenizerTask.get_parser().parse_args(["--config", str(path)])
    torch.manual_seed(5)
    return TokenizerTask.build_model(args)


@pytest.mark.timeout(120)
def test_task_builds_the_same_model_from_nested_and_flat_yaml(tmp_path):
    shipped = yaml.safe_load((REPO / "conf" / "tiny" / "tokenizer.yaml").read_text())["tokenizer_conf"]["config"]
    assert "encoder" in shipped  # the shipped YAMLs use the nested form
    flat = {k: v for k, v in shipped.items() if k != "encoder"}
    flat.update(shipped["encoder"])
    teacher = _teacher(tmp_path)
    a = _build(tmp_path, "nested", shipped, teacher).tokenizer
    b = _build(tmp_path, "flat", flat, teacher).tokenizer
    assert a.config == b.config
    assert a.config.encoder.dropout == 0.0 and a.config.target_dim == 160
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    with pytest.raises(ValueError, match="dropoutt"):
        _build(tmp_path, "bad_nested", {"encoder": {"dropoutt": 0.0}}, teacher)
    with pytest.raises(ValueError, match="dropoutt"):
        _build(tmp_path, "bad_flat", {"dropoutt": 0.0}, teacher)
