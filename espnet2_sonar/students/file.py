"""Student checkpoint files: a self-describing dict the frozen probe and s3prl can load.

Checkpoint (``torch.save``; loads with ``weights_only=True``)::

    {"kind": "ssondo_student", "version": 1,
     "student": "mobilenetv3", "student_conf": {...}, "fbank_mean": .., "fbank_std": ..,
     "head": {"input_size", "output_size", "hidden_size", "dropout"},
     "features": "backbone" | "mapped",
     "model": state dict of ExportedStudent (student.*, head.*),
     "meta": {"teacher", "teacher_params", "student_params", "head_params", "bds", ...}}

:class:`ExportedStudent` has what ``espnet2_sonar.eval.embeddings`` and the s3prl expert
call on a BEATs encoder (``extract_layers``, ``patch_lengths``, ``freq_patches``,
``patch_size``). Its hidden states are

* ``features="backbone"`` (default): the student's own hidden states [B, N, D_s] (frames
  of ``patch_size`` x 10 ms); their mean is the clip embedding the head was trained on;
* ``features="mapped"``: one step per clip, the head's output in the teacher's space
  [B, 1, D_t].

Importing this module registers :func:`student_from_state` under ``ssondo_student``
(``utils.checkpoint_kinds``), so ``eval.checkpoints.load_encoder`` dispatches on
``ckpt["kind"]`` to it and the frozen probe, the probe matrix and the s3prl upstream read
student checkpoints like any other encoder, without importing S-SONDO. The files are written
by ``espnet2_sonar.ssondo.export`` from a trained S-SONDO run.
"""

from pathlib import Path
from typing import Dict, Iterable, List, Optional

import torch
from torch import Tensor, nn

from espnet2_sonar.nn.frozen_extractor import FrozenExtractor
from espnet2_sonar.nn.state_dict import state_diff
from espnet2_sonar.students.encoder import StudentEncoder
from espnet2_sonar.students.head import MappingHead
from espnet2_sonar.students.registry import build_student
from espnet2_sonar.utils.checkpoint_kinds import register_checkpoint_kind

KIND = "ssondo_student"
VERSION = 1
FEATURES = ("backbone", "mapped")


class StudentCheckpointError(ValueError):
    """A student checkpoint that is malformed or does not match its model."""


class ExportedStudent(nn.Module, FrozenExtractor):
    """A trained student (+ its mapping head) as a frozen feature extractor.

    Args:
        student: StudentEncoder; head: MappingHead; features: ``backbone`` or ``mapped``.
    """

    freq_patches = 1

    def __init__(self, student: StudentEncoder, head: MappingHead, features: str = "backbone"):
        super().__init__()
        if features not in FEATURES:
            raise ValueError(f"features must be one of {FEATURES}, got {features!r}")
        self.student, self.head, self.features = student, head, features

    @property
    def patch_size(self) -> int:
        return self.student.patch_size

    def patch_lengths(self, lengths: Tensor) -> Tensor:
        """Valid steps [B] of the hidden states from valid samples [B]."""
        if self.features == "mapped":
            return torch.ones_like(lengths, dtype=torch.long)
        return self.student.patch_lengths(lengths)

    def extract_layers(self, wavs: Tensor, lengths: Tensor) -> List[Tensor]:
        """wavs [B, T], lengths [B] -> hidden states (see the module docstring)."""
        if self.features == "mapped":
            return [self.head(self.student.embed(wavs, lengths))[:, None, :]]
        return self.student.extract_layers(wavs, lengths)

    def embed(self, wavs: Tensor, lengths: Tensor) -> Tensor:
        """Clip embedding [B, D_s] of the student backbone."""
        return self.student.embed(wavs, lengths)


def check_state(model: nn.Module, state: Dict[str, Tensor], source: str, ignore: Iterable[str] = ()) -> Dict[str, Tensor]:
    """``state`` (less keys matching an ``ignore`` pattern) if it fits ``model`` exactly, else
    :class:`StudentCheckpointError` naming ``source`` and the first offending keys."""
    import fnmatch

    state = {k: v for k, v in state.items() if not any(fnmatch.fnmatch(k, pat) for pat in ignore)}
    expected = model.state_dict()
    diff = state_diff(expected, state)
    missing, unexpected = diff.missing, diff.unexpected
    shapes = [f"{k}: {tuple(state[k].shape)} vs {tuple(expected[k].shape)}" for k in diff.mismatched]
    if missing or unexpected or shapes:
        raise StudentCheckpointError(
            f"{source}: weights do not match the student: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}, shape mismatches {shapes[:5]}"
        )
    return state


@register_checkpoint_kind(KIND)
def student_from_state(ckpt: dict, source: str = "<state>", features: Optional[str] = None) -> ExportedStudent:
    """Build an ExportedStudent (eval mode, CPU) from a loaded student checkpoint dict (strict)."""
    if not isinstance(ckpt, dict) or ckpt.get("kind") != KIND:
        raise StudentCheckpointError(f"{source}: not an S-SONDO student checkpoint (no kind={KIND!r})")
    if ckpt.get("version") != VERSION:
        raise StudentCheckpointError(f"{source}: unsupported student checkpoint version {ckpt.get('version')}")
    for key in ("student", "student_conf", "head", "model"):
        if key not in ckpt:
            raise StudentCheckpointError(f"{source}: student checkpoint lacks {key!r}")
    try:
        backbone = build_student(ckpt["student"], ckpt["student_conf"])
        head = MappingHead(**ckpt["head"])
    except (TypeError, ValueError) as e:
        raise StudentCheckpointError(f"{source}: bad student description: {e}") from e
    encoder = StudentEncoder(backbone, ckpt.get("fbank_mean", 15.41663), ckpt.get("fbank_std", 6.55582))
    model = ExportedStudent(encoder, head, features or ckpt.get("features", "backbone"))
    model.load_state_dict(check_state(model, ckpt["model"], source), strict=True)
    return model.eval()


def student_checkpoint(
    model: ExportedStudent, student: str, student_conf: Dict, head_conf: Dict, meta: Dict
) -> Dict:
    """The checkpoint dict of ``model`` (see the module docstring): ``student``/``student_conf``
    name its backbone in ``students.registry``, ``head_conf`` holds MappingHead's arguments."""
    return {
        "kind": KIND,
        "version": VERSION,
        "student": student,
        "student_conf": dict(student_conf),
        "fbank_mean": model.student.frontend.fbank_mean,
        "fbank_std": model.student.frontend.fbank_std,
        "head": head_conf,
        "features": model.features,
        "model": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "meta": meta,
    }


def is_student_checkpoint(path: str | Path) -> bool:
    """True when ``path`` is a file holding an S-SONDO student checkpoint."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - any unreadable file is simply not ours
        return False
    return isinstance(ckpt, dict) and ckpt.get("kind") == KIND


def load_student(path: str | Path, features: Optional[str] = None) -> ExportedStudent:
    """Load an exported student (``features`` overrides the checkpoint's choice)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised with the file name
        raise StudentCheckpointError(f"{path}: cannot be read with torch.load ({e})") from e
    return student_from_state(ckpt, str(path), features)
