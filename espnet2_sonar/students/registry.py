"""Registry of the S-SONDO student backbones (used by the task's ClassChoices and by checkpoints).

===============  ==============================================  ==========================
name             class                                           config
===============  ==============================================  ==========================
``mobilenetv3``  :class:`~.mobilenetv3.MobileNetV3Student`       ``MobileNetV3Config``
``eres2net``     :class:`~.eres2net.ERes2NetStudent`             ``ERes2NetConfig``
``transformer``  :class:`~.small_transformer.SmallTransformerStudent`  ``SmallTransformerConfig``
===============  ==============================================  ==========================
"""

from typing import Dict, Type

from espnet2_sonar.students.abs_student import AbsStudent
from espnet2_sonar.students.eres2net import ERes2NetStudent
from espnet2_sonar.students.mobilenetv3 import MobileNetV3Student
from espnet2_sonar.students.small_transformer import SmallTransformerStudent

STUDENTS: Dict[str, Type[AbsStudent]] = {
    "mobilenetv3": MobileNetV3Student,
    "eres2net": ERes2NetStudent,
    "transformer": SmallTransformerStudent,
}


def build_student(name: str, conf: dict | None = None) -> AbsStudent:
    """``STUDENTS[name](**conf)``; an unknown name raises ``ValueError`` listing the known ones."""
    if name not in STUDENTS:
        raise ValueError(f"unknown student {name!r}; known: {sorted(STUDENTS)}")
    return STUDENTS[name](**dict(conf or {}))
