"""Export the student of a trained S-SONDO run as a student checkpoint file.

The file format, and the loader the probes use, are ``espnet2_sonar.students.file``'s;
this module reads an ``SsondoTask`` output dir (config.yaml + model file) and records what
the run was (loss, BDS, seed, teacher) in the file's ``meta``.
"""

import glob
from pathlib import Path

import torch
import yaml

from espnet2_sonar.ssondo.model import SsondoConfig
from espnet2_sonar.ssondo.teacher_cache import TeacherInfo
from espnet2_sonar.students.encoder import StudentEncoder, count_parameters
from espnet2_sonar.students.file import ExportedStudent, StudentCheckpointError, check_state, student_checkpoint
from espnet2_sonar.students.head import MappingHead
from espnet2_sonar.students.registry import build_student
from espnet2_sonar.utils.atomic_write import atomic_path


def _model_file(exp_dir: Path) -> Path:
    for name in ("valid.loss.best.pth", "latest.pth"):
        if (exp_dir / name).exists():
            return exp_dir / name
    found = glob.glob(str(exp_dir / "*epoch.pth"))
    if found:  # the highest epoch number (10epoch.pth after 9epoch.pth)
        return Path(max(found, key=lambda p: int(Path(p).name[: -len("epoch.pth")] or -1)))
    raise FileNotFoundError(f"{exp_dir}: no trained model (valid.loss.best.pth, latest.pth or *epoch.pth)")


def export_student(exp_dir: str | Path, out: str | Path, model_file: str | Path | None = None, features: str = "backbone") -> Path:
    """Write the student of an SsondoTask exp dir (config.yaml + *.pth) as a student checkpoint.

    The model file defaults to ``valid.loss.best.pth``, else ``latest.pth``, else the last
    ``*epoch.pth``. The state is checked strictly (student.* and head.* keys only).
    """
    exp_dir = Path(exp_dir)
    config_file = exp_dir / "config.yaml"
    if not config_file.is_file():
        raise FileNotFoundError(f"{config_file}: missing (expected an SsondoTask output dir)")
    conf = yaml.safe_load(config_file.read_text())
    model_file = Path(model_file) if model_file else _model_file(exp_dir)
    state = torch.load(model_file, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]  # ESPnet resume checkpoint
    config = SsondoConfig.from_dict(conf.get("model_conf"))
    if config.teacher_dim is None:
        raise StudentCheckpointError(f"{config_file}: model_conf.teacher_dim is not recorded")
    backbone = build_student(conf["student"], conf.get("student_conf") or {})
    encoder = StudentEncoder(backbone)
    head_conf = dict(
        input_size=encoder.output_size(),
        output_size=config.teacher_dim,
        hidden_size=config.head_hidden,
        dropout=config.head_dropout,
    )
    model = ExportedStudent(encoder, MappingHead(**head_conf), features)
    model.load_state_dict(check_state(model, state, str(model_file)), strict=True)
    meta = {
        "exp_dir": str(exp_dir),
        "model_file": str(model_file),
        "loss": conf.get("loss"),
        "bds": conf.get("bds_clusters") is not None,
        "seed": conf.get("seed"),
        "student_params": count_parameters(encoder),
        "head_params": count_parameters(model.head),
    }
    for path, name, _ in conf.get("train_data_path_and_name_and_type") or []:
        if name == "teacher_emb":
            cache = Path(path) if Path(path).is_dir() else Path(path).parent
            try:
                info = TeacherInfo.read(cache)
                meta.update(teacher=info.teacher, teacher_params=info.teacher_params, teacher_dim=info.dim)
            except FileNotFoundError:
                pass
    ckpt = student_checkpoint(model, conf["student"], conf.get("student_conf") or {}, head_conf, meta)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        torch.save(ckpt, tmp)
    return out
