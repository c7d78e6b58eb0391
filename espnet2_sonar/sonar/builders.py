"""Factories behind SonarTask's ``--encoder`` and ``--predictor`` choices.

They take plain keyword arguments (what ``--encoder_conf`` / ``--predictor_conf`` hold), so
``--print_config`` lists them and YAML configs stay small.
"""

from typing import Any, Dict, Optional


def build_encoder(arch: str = "tiny", init: Optional[str] = None, config: Optional[Dict[str, Any]] = None):
    """A BEATs encoder for training.

    Args:
        arch: named architecture (``tiny``, ``small``, ``base``) when ``init`` is None.
        init: path of an official-format BEATs checkpoint to start from (its cfg wins;
            ``config`` may still override training-only fields such as dropouts).
        config: BeatsConfig field overrides.
    Returns:
        ``BeatsEncoder`` in training mode.
    """
    from espnet2_sonar.beats.config import BeatsConfig
    from espnet2_sonar.beats.encoder import BeatsEncoder
    from espnet2_sonar.beats.interop import load_official

    if init:
        encoder = load_official(init, config_overrides=config or {})
    else:
        encoder = BeatsEncoder(BeatsConfig.named(arch, **(config or {})))
    return encoder.train()


def build_predictor(encoder_dim: int, num_layers: int = 1, **kwargs):
    """The MAM predictor on top of an encoder of width ``encoder_dim``.

    Args:
        encoder_dim: width of the encoder output (the predictor's width too).
        num_layers: transformer layers of the predictor.
        **kwargs: further ``BeatsPredictor`` options.
    """
    from espnet2_sonar.beats.predictor import BeatsPredictor

    return BeatsPredictor(encoder_dim=encoder_dim, num_layers=num_layers, **kwargs)
