"""``resolve_checkpoint(path)``: which files a checkpoint path stands for, without loading weights.

An official ``.pt`` (or a Hugging Face spec of one, ``utils.hub``), an ESPnet ``.pth`` with
its ``config.yaml`` beside it, or an ESPnet exp dir. Below the methods so that they can key
caches on a checkpoint's files; ``eval.checkpoints.load_encoder`` builds the encoder.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional


@dataclass
class CheckpointFiles:
    """What ``path`` resolved to."""

    kind: str
    """``official`` or ``espnet``."""
    model_file: Path
    config_file: Optional[Path]
    """``config.yaml`` of an ESPnet model; None for official checkpoints."""

    @property
    def files(self) -> List[Path]:
        """Every file the encoder's weights depend on (used as a cache key)."""
        return [self.model_file] + ([self.config_file] if self.config_file else [])


def _espnet_model_file(directory: Path) -> Path:
    if (directory / "latest.pth").is_file():
        return directory / "latest.pth"
    candidates = sorted(p for p in directory.glob("*.pth") if p.name != "checkpoint.pth")
    if len(candidates) == 1:
        return candidates[0]
    if not candidates and (directory / "checkpoint.pth").is_file():
        return directory / "checkpoint.pth"
    if not candidates:
        raise ValueError(f"{directory}: no *.pth model file (expected an ESPnet exp dir with config.yaml and *.pth)")
    raise ValueError(
        f"{directory}: several model files {[p.name for p in candidates]} and no latest.pth; pass one explicitly"
    )


def resolve_checkpoint(path: str | Path, config: str | Path | None = None) -> CheckpointFiles:
    """Classify ``path`` (official ``.pt``, ESPnet ``.pth`` or ESPnet dir) without loading weights.

    ``config`` overrides the ``config.yaml`` next to an ESPnet model file.
    """
    from espnet2_sonar.utils.hub import resolve_checkpoint_path

    path = resolve_checkpoint_path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.is_dir():
        model_file = _espnet_model_file(path)
    elif config is not None or (path.suffix == ".pth" and (path.parent / "config.yaml").is_file()):
        model_file = path
    else:
        return CheckpointFiles("official", path, None)
    config_file = Path(config) if config is not None else model_file.parent / "config.yaml"
    if not config_file.is_file():
        raise FileNotFoundError(f"{model_file}: the ESPnet config {config_file} does not exist")
    return CheckpointFiles("espnet", model_file, config_file)
