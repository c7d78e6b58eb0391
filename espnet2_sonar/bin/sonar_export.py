#!/usr/bin/env python3
"""Export a trained SonarTask / TokenizerTask / TeacherDistillTask experiment dir.

    python -m espnet2_sonar.bin.sonar_export --exp_dir exp/sonar/music [--out_dir DIR]

Writes to out_dir (default: exp_dir):
    encoder.pt    the student encoder in official BEATs format ({'cfg', 'model'}) (SonarTask,
                  TeacherDistillTask)
    tokenizer.pt  the (evolved) tokenizer in official BEATs tokenizer format (SonarTask, TokenizerTask)
    model.pth     the whole ESPnet model state (predictor and heads seed the next stage)
    packed.zip    the ESPnet model for sharing, packed by ESPnet's pack code (meta.yaml with the
                  python/torch/espnet versions) and self-contained: the init checkpoints the config
                  names are inside, so it unpacks into a working model anywhere
                  (espnet2_sonar/utils/packing.py)
The model file is ``latest.pth`` (last epoch; SSL losses of a growing codebook are not
comparable across epochs), else the newest ``<N>epoch.pth``.
"""

import argparse
import re
import sys
from pathlib import Path

import torch
import yaml


def find_model_file(exp_dir: Path) -> Path:
    latest = exp_dir / "latest.pth"
    if latest.exists():
        return latest.resolve()
    epochs = sorted(
        (int(m.group(1)), p) for p in exp_dir.glob("*epoch.pth") if (m := re.fullmatch(r"(\d+)epoch\.pth", p.name))
    )
    if not epochs:
        raise FileNotFoundError(f"{exp_dir}: no latest.pth or <N>epoch.pth; has training finished?")
    return epochs[-1][1]


def is_teacher_experiment(config: dict) -> bool:
    """TeacherDistillTask configs name a ``teacher``; the other tasks do not."""
    return "teacher" in config


def is_tokenizer_experiment(config: dict) -> bool:
    """TokenizerTask configs carry ``tokenizer_train_conf``; SonarTask configs do not."""
    return "tokenizer_train_conf" in config


def export(exp_dir: str | Path, out_dir: str | Path | None = None) -> dict:
    """Export ``exp_dir``; returns the written paths by name."""
    from espnet2_sonar.beats.interop import save_official
    from espnet2_sonar.tokenizer.interop import save_official_tokenizer
    from espnet2_sonar.utils.packing import pack_experiment

    exp_dir = Path(exp_dir)
    out_dir = Path(out_dir) if out_dir else exp_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    config_file = exp_dir / "config.yaml"
    if not config_file.is_file():
        raise FileNotFoundError(f"{config_file}: missing; is {exp_dir} an ESPnet experiment dir?")
    config = yaml.safe_load(config_file.read_text())
    model_file = find_model_file(exp_dir)
    if is_tokenizer_experiment(config):
        from espnet2_sonar.tasks.tokenizer import TokenizerTask as Task
    elif is_teacher_experiment(config):
        from espnet2_sonar.tasks.teacher_distill import TeacherDistillTask as Task
    else:
        from espnet2_sonar.tasks.sonar import SonarTask as Task
    model, _ = Task.build_model_from_file(config_file, model_file, device="cpu")
    model.eval()
    written = {}
    if is_tokenizer_experiment(config):
        tokenizer = model.tokenizer
    else:
        save_official(model.encoder, out_dir / "encoder.pt")
        written["encoder"] = out_dir / "encoder.pt"
        targets = getattr(model, "targets", None)  # a teacher-distilled encoder has no tokenizer
        tokenizer = targets.exportable_tokenizer() if targets is not None else None
    if tokenizer is not None:
        save_official_tokenizer(tokenizer, out_dir / "tokenizer.pt")
        written["tokenizer"] = out_dir / "tokenizer.pt"
    torch.save(model.state_dict(), out_dir / "model.pth")
    written["model"] = out_dir / "model.pth"
    provenance = [p for p in [exp_dir / "stage_inputs.json"] if p.is_file()]  # the recipe's record
    pack_experiment(config_file, model_file, out_dir / "packed.zip", extra_files=provenance)
    written["packed"] = out_dir / "packed.zip"
    return written


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp_dir", required=True)
    p.add_argument("--out_dir", default=None)
    args = p.parse_args(argv)
    for name, path in export(args.exp_dir, args.out_dir).items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
