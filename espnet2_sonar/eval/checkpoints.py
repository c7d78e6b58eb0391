"""``load_encoder(path)``: a frozen-evaluation BEATs encoder from any checkpoint we produce.

Accepted inputs:

* a BEATs checkpoint in any format ``espnet2_sonar.beats.formats`` reads: official
  pre-trained or fine-tuned (``BEATs_iter*.pt``), ESPnet/OpenBEATs, our stage-5 export;
* a Hugging Face spec (``hf://OWNER/REPO/PATH``, ``https://huggingface.co/...``) of such a file,
  fetched into the Hub cache (``espnet2_sonar.utils.hub``);
* a self-describing checkpoint of another encoder family, a dict with a ``kind`` key,
  dispatched through the registry ``utils.checkpoint_kinds`` (:data:`KIND_LOADERS`), which
  the families imported here register into: ``decar_efficientnet`` (DECAR's CNN,
  ``espnet2_sonar.efficientnet.interop``), ``ssondo_student`` (an exported S-SONDO student,
  ``espnet2_sonar.students.file``), ``logmel_stats`` (the log-mel-statistics floor,
  ``espnet2_sonar.eval.logmel_floor``) and ``frame_teacher`` (a pretrained teacher whose
  weights ship in a package, ``espnet2_sonar.teachers``: a reference row);
* a packed / trained ESPnet model: a ``*.pth`` state dict (or ESPnet's resume
  ``checkpoint.pth`` holding one under ``model``) whose encoder parameters carry the prefix
  ``encoder.``, plus the ``config.yaml`` beside it whose ``encoder_conf`` holds either the
  ``BeatsEncoder`` arguments (``config: {...official cfg keys...}``, ``fbank_mean``, ...)
  or directly a BEATs config dict (official cfg keys). Give the ``.pth`` file or the
  directory: a directory uses ``latest.pth`` if present, else its only ``*.pth``
  (``checkpoint.pth`` aside).

A file is read as an ESPnet model when it ends in ``.pth`` and a ``config.yaml`` sits beside
it (or ``config`` is given), otherwise as an official checkpoint.

Anything else raises ``ValueError`` naming the file and what was expected. The encoder
state is loaded strictly: every ``encoder.*`` key must match; other prefixes (predictor,
tokenizer, teacher, ...) are not the encoder's and are left out on purpose.
"""

from pathlib import Path
from typing import Callable, Dict

import torch

# the encoder families whose self-describing checkpoints this loader reads; importing them
# registers their ``kind`` loaders
import espnet2_sonar.efficientnet.interop  # noqa: F401 - decar_efficientnet
import espnet2_sonar.eval.logmel_floor  # noqa: F401 - logmel_stats
import espnet2_sonar.students.file  # noqa: F401 - ssondo_student
import espnet2_sonar.teachers.registry  # noqa: F401 - frame_teacher
from espnet2_sonar.utils.checkpoint_files import CheckpointFiles, resolve_checkpoint  # noqa: F401 - re-exported
from espnet2_sonar.utils.checkpoint_kinds import CHECKPOINT_KINDS

ENCODER_PREFIX = "encoder."

KIND_LOADERS: Dict[str, Callable] = CHECKPOINT_KINDS
"""``ckpt['kind']`` -> ``loader(ckpt, source)``, returning an encoder that is a
``nn.frozen_extractor.FrozenExtractor`` (``extract_layers``, ``patch_lengths``, ...)."""


def kind_loader(kind: str, source: str) -> Callable:
    """The loader registered for ``kind`` (``ValueError`` naming ``source`` if none is)."""
    if kind not in KIND_LOADERS:
        raise ValueError(f"{source}: unknown checkpoint kind {kind!r} (known: {sorted(KIND_LOADERS)})")
    return KIND_LOADERS[kind]


def _encoder_conf_from_yaml(config_file: Path) -> dict:
    import yaml

    with open(config_file, encoding="utf-8") as f:
        conf = yaml.safe_load(f)
    if not isinstance(conf, dict) or not isinstance(conf.get("encoder_conf"), dict):
        raise ValueError(f"{config_file}: no 'encoder_conf' mapping (expected a BEATs config dict there)")
    return dict(conf["encoder_conf"])


def _build_encoder(encoder_conf: dict, config_file: Path):
    """The encoder an ``encoder_conf`` describes, by the keys each class declares (``CONF_KEYS``):

    * only ``SonarBeatsEncoder`` keys, one of them not a ``BeatsEncoder`` key (``arch``,
      ``init``): ``SonarBeatsEncoder(**encoder_conf)``;
    * only ``BeatsEncoder`` keys (``config``, ``fbank_mean``, ...): ``BeatsEncoder(**encoder_conf)``;
    * else official BEATs cfg keys: ``BeatsEncoder(BeatsConfig.from_dict(encoder_conf))``.
    """
    from espnet2_sonar.beats.config import BeatsConfig
    from espnet2_sonar.beats.encoder import BeatsEncoder
    from espnet2_sonar.beats.encoder_choice import SonarBeatsEncoder

    arguments = set(BeatsEncoder.CONF_KEYS)
    sonar_arguments = set(SonarBeatsEncoder.CONF_KEYS)
    try:
        if set(encoder_conf) <= sonar_arguments and set(encoder_conf) - arguments:
            # SonarTask's ``--encoder_conf {arch, init, config}`` (weights come from the model file)
            return SonarBeatsEncoder(**encoder_conf)
        if set(encoder_conf) <= arguments:
            return BeatsEncoder(**encoder_conf)
        return BeatsEncoder(BeatsConfig.from_dict(encoder_conf))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{config_file}: bad encoder_conf: {e}") from e


def _encoder_state(model_file: Path) -> dict:
    try:
        state = torch.load(model_file, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised with the file name
        raise ValueError(f"{model_file}: cannot be read as a torch state dict ({e})") from e
    if isinstance(state, dict) and isinstance(state.get("model"), dict) and "cfg" not in state:
        state = state["model"]  # ESPnet resume checkpoint
    if not isinstance(state, dict):
        raise ValueError(f"{model_file}: expected a state dict, got {type(state).__name__}")
    enc = {k[len(ENCODER_PREFIX) :]: v for k, v in state.items() if k.startswith(ENCODER_PREFIX)}
    if not enc:
        some = sorted(state)[:5]
        raise ValueError(f"{model_file}: no parameters under the prefix '{ENCODER_PREFIX}' (first keys: {some})")
    return enc


def _load_official(model_file: Path):
    from espnet2_sonar.beats.formats import canonical_encoder_checkpoint
    from espnet2_sonar.beats.interop import encoder_from_official

    try:
        ckpt = torch.load(model_file, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised with the file name
        raise ValueError(f"{model_file}: cannot be read with torch.load ({e})") from e
    if isinstance(ckpt, dict) and "kind" in ckpt:  # another encoder family (DECAR CNN, S-SONDO student)
        return kind_loader(ckpt["kind"], str(model_file))(ckpt, str(model_file)).eval()
    if not (isinstance(ckpt, dict) and "model" in ckpt):
        raise ValueError(
            f"{model_file}: unknown checkpoint format; expected a BEATs checkpoint (a dict with "
            "'cfg' and 'model': official or ESPnet/OpenBEATs), an ESPnet *.pth with its config.yaml "
            "beside it, or an ESPnet exp dir"
        )
    # any BEATs format; a fine-tuned checkpoint's classifier is not part of the encoder
    return encoder_from_official(canonical_encoder_checkpoint(ckpt, str(model_file)), source=str(model_file))


def load_encoder(path: str | Path, config: str | Path | None = None):
    """Load a ``BeatsEncoder`` (eval mode, CPU) from an official or ESPnet checkpoint.

    Args:
        path: official ``.pt``, ESPnet ``.pth`` or ESPnet exp dir (see module docstring).
        config: optional ESPnet ``config.yaml`` for a ``.pth`` stored elsewhere.
    """
    files = resolve_checkpoint(path, config)
    if files.kind == "official":
        return _load_official(files.model_file)  # also any self-describing ``kind`` checkpoint
    encoder = _build_encoder(_encoder_conf_from_yaml(files.config_file), files.config_file)
    try:
        encoder.load_state_dict(_encoder_state(files.model_file), strict=True)
    except RuntimeError as e:
        raise ValueError(f"{files.model_file}: encoder weights do not match {files.config_file}: {e}") from e
    return encoder.eval()
