"""The encoder behind the ``--encoder beats`` choice of SonarTask and DecarTask.

ESPnet's ``ClassChoices`` wants classes whose keyword arguments are what ``--encoder_conf``
holds, so ``--print_config`` lists them and YAML configs stay small.
"""

from typing import Any, ClassVar, Dict, Optional, Tuple

from espnet2_sonar.beats.config import BeatsConfig
from espnet2_sonar.beats.encoder import BeatsEncoder


class SonarBeatsEncoder(BeatsEncoder):
    """A ``BeatsEncoder`` from a named architecture or an official BEATs checkpoint.

    Args:
        arch: named architecture (``tiny``, ``small``, ``base``) when ``init`` is None.
        init: BEATs checkpoint to start from, any format (official pre-trained or fine-tuned,
            ESPnet/OpenBEATs, ours; a file or Hugging Face spec, see ``beats.formats``); its
            cfg wins, ``config`` may still override training-only fields such as dropouts.
        config: BeatsConfig field overrides.
    """

    CONF_KEYS: ClassVar[Tuple[str, ...]] = ("arch", "init", "config")
    """The keyword arguments of ``__init__``: the keys of SonarTask's ``--encoder_conf``."""

    def __init__(self, arch: str = "tiny", init: Optional[str] = None, config: Optional[Dict[str, Any]] = None):
        if init:
            from espnet2_sonar.beats.formats import load_beats_encoder

            loaded = load_beats_encoder(init, overrides=config or None)
            super().__init__(loaded.config)
            self.load_state_dict(loaded.state_dict(), strict=True)
        else:
            super().__init__(BeatsConfig.named(arch, **(config or {})))
        self.train()
