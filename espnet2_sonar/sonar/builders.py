"""The encoder behind SonarTask's ``--encoder beats`` choice.

ESPnet's ``ClassChoices`` wants classes whose keyword arguments are what ``--encoder_conf``
holds, so ``--print_config`` lists them and YAML configs stay small.
"""

from typing import Any, Dict, Optional

from espnet2_sonar.beats.config import BeatsConfig
from espnet2_sonar.beats.encoder import BeatsEncoder


class SonarBeatsEncoder(BeatsEncoder):
    """A ``BeatsEncoder`` from a named architecture or an official BEATs checkpoint.

    Args:
        arch: named architecture (``tiny``, ``small``, ``base``) when ``init`` is None.
        init: official-format BEATs checkpoint to start from (its cfg wins; ``config`` may
            still override training-only fields such as dropouts).
        config: BeatsConfig field overrides.
    """

    def __init__(self, arch: str = "tiny", init: Optional[str] = None, config: Optional[Dict[str, Any]] = None):
        if init:
            from espnet2_sonar.beats.interop import load_official

            loaded = load_official(init, overrides=config or None)
            super().__init__(loaded.config)
            self.load_state_dict(loaded.state_dict(), strict=True)
        else:
            super().__init__(BeatsConfig.named(arch, **(config or {})))
        self.train()
