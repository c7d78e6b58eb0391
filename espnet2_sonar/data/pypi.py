"""Download a pinned PyPI wheel with pip (no install) and extract the audio it ships.

Used for bioacoustics example recordings bundled in ``pykanto`` and ``vocalpy`` wheels.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from espnet2_sonar.data.package_cache import (
    ExtractedPackage,
    ExtractionWriter,
    is_audio_name,
    load_manifest,
)


class WheelError(RuntimeError):
    """pip could not fetch the wheel; the message names it and pip's error."""


def cached_wheel(name: str, version: str, wheel_dir: Path) -> Path | None:
    stem = name.replace("-", "_")
    hits = sorted(wheel_dir.glob(f"{stem}-{version}-*.whl"))
    return hits[-1] if hits else None


def download_wheel(name: str, version: str, wheel_dir: Path) -> tuple[Path, int]:
    """``pip download name==version --no-deps`` into ``wheel_dir`` unless cached."""
    wheel_dir.mkdir(parents=True, exist_ok=True)
    hit = cached_wheel(name, version, wheel_dir)
    if hit is not None:
        return hit, 0
    tmp = Path(tempfile.mkdtemp(prefix=f".dl-{name}-", dir=wheel_dir))
    try:
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
               f"{name}=={version}", "-d", str(tmp)]
        res = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(tmp.glob("*.whl"))
        if res.returncode != 0 or len(wheels) != 1:
            raise WheelError(f"pip download {name}=={version} failed: {res.stderr.strip()[-500:]}")
        final = wheel_dir / wheels[0].name
        os.replace(wheels[0], final)
        return final, final.stat().st_size
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def extract_wheel_audio(name: str, wheel: Path, out_root: Path) -> ExtractedPackage:
    """Extract the audio members of ``wheel`` to ``out_root`` (reused when already done)."""
    cached = load_manifest(out_root, wheel.name)
    if cached is not None:
        return cached
    writer = ExtractionWriter(name, wheel.name, out_root)
    try:
        with zipfile.ZipFile(wheel) as zf:
            for info in zf.infolist():
                if info.is_dir() or not is_audio_name(info.filename):
                    continue
                with zf.open(info) as s:
                    writer.add_stream(info.filename, s, info.file_size)
    except zipfile.BadZipFile as e:
        writer.abort()
        raise WheelError(f"{wheel}: not a valid wheel ({e}); delete it to re-download") from None
    except BaseException:
        writer.abort()
        raise
    return writer.commit()
