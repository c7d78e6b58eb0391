#!/usr/bin/env python3
"""Base pre-training from a frozen teacher: ``python -m espnet2_sonar.bin.teacher_distill --config conf/tiny/pretrain_teacher.yaml ...``."""

from espnet2_sonar.tasks.teacher_distill import TeacherDistillTask


def get_parser():
    return TeacherDistillTask.get_parser()


def main(cmd=None):
    """Run ESPnet's training loop for TeacherDistillTask (all ESPnet options apply)."""
    TeacherDistillTask.main(cmd=cmd)


if __name__ == "__main__":
    main()
