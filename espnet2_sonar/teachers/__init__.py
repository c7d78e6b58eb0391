"""Frozen external teachers with frame-level features (base pre-training and reference rows).

A teacher is a pretrained model whose weights ship inside a registry package, so it works
offline: ``ge2e`` is the GE2E voice encoder of the ``Resemblyzer`` wheel. ``load_teacher``
builds one by name; ``teacher_checkpoint`` writes the small self-describing file
(``{'kind': 'frame_teacher', 'name': ...}``) through which the probes read it as a
reference encoder.
"""

from espnet2_sonar.teachers.frames import FrameTeacher, TeacherFrames
from espnet2_sonar.teachers.registry import (
    TEACHERS,
    TeacherPackageMissing,
    load_teacher,
    teacher_checkpoint,
    teacher_from_checkpoint,
)

__all__ = [
    "FrameTeacher",
    "TeacherFrames",
    "TEACHERS",
    "TeacherPackageMissing",
    "load_teacher",
    "teacher_checkpoint",
    "teacher_from_checkpoint",
]
