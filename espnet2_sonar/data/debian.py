"""Download Debian packages with ``apt-get download`` and extract only their audio.

Nothing is installed: the ``.deb`` is streamed through ``dpkg-deb --fsys-tarfile`` and
only audio members (and audio inside zip members, e.g. 0ad's ``public.zip``) are written
to the extraction cache (see ``package_cache``).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from espnet2_sonar.data.package_cache import (
    ExtractedPackage,
    ExtractionWriter,
    is_audio_name,
    load_manifest,
)

log = logging.getLogger(__name__)

_NOT_FOUND_MARKERS = ("Unable to locate package", "Can't select candidate", "has no installation candidate")


class DebianError(RuntimeError):
    """apt-get / dpkg-deb is missing or failed; the message says what to do."""


def _run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise DebianError(
            f"{cmd[0]} not found: the corpus builder needs Debian's apt-get and dpkg-deb "
            "(or pre-downloaded .deb files in the cache's debs/ folder)"
        ) from None


def cached_deb(name: str, deb_dir: Path) -> Path | None:
    """The newest cached ``<name>_*.deb`` in ``deb_dir``, or None."""
    hits = sorted(deb_dir.glob(f"{name}_*.deb"), key=lambda p: p.stat().st_mtime)
    return hits[-1] if hits else None


def download_deb(name: str, deb_dir: Path) -> tuple[Path, int]:
    """``apt-get download name`` into ``deb_dir`` unless cached -> (path, bytes downloaded).

    Runs ``apt-get update`` once when apt cannot locate the package, then retries.
    Raises ``DebianError`` naming the package and apt's message on failure.
    """
    deb_dir.mkdir(parents=True, exist_ok=True)
    hit = cached_deb(name, deb_dir)
    if hit is not None and hit.stat().st_size > 0:
        return hit, 0
    tmp = Path(tempfile.mkdtemp(prefix=f".dl-{name}-", dir=deb_dir))
    try:
        cmd = ["apt-get", "-q", "-o", "APT::Sandbox::User=root", "download", name]
        res = _run(cmd, cwd=tmp)
        if res.returncode != 0 and any(m in res.stderr for m in _NOT_FOUND_MARKERS):
            log.info("apt cannot locate %s; running apt-get update", name)
            upd = _run(["apt-get", "-q", "update"])
            if upd.returncode != 0:
                raise DebianError(f"apt-get update failed (needed to find {name}): {upd.stderr.strip()[-500:]}")
            res = _run(cmd, cwd=tmp)
        if res.returncode != 0:
            raise DebianError(f"apt-get download {name} failed: {res.stderr.strip()[-500:]}")
        debs = list(tmp.glob("*.deb"))
        if len(debs) != 1:
            raise DebianError(f"apt-get download {name} produced {len(debs)} .deb files in {tmp}")
        final = deb_dir / debs[0].name
        os.replace(debs[0], final)
        return final, final.stat().st_size
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def extract_deb_audio(name: str, deb: Path, out_root: Path) -> ExtractedPackage:
    """Extract the audio members of ``deb`` to ``out_root`` (reused when already done)."""
    cached = load_manifest(out_root, deb.name)
    if cached is not None:
        return cached
    if shutil.which("dpkg-deb") is None:
        raise DebianError("dpkg-deb not found: it is needed to unpack Debian packages (apt install dpkg)")
    writer = ExtractionWriter(name, deb.name, out_root)
    proc = subprocess.Popen(
        ["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for m in tar:
                member = m.name[2:] if m.name.startswith("./") else m.name
                if not m.isfile():
                    continue
                low = member.lower()
                if low.endswith(".zip"):
                    _extract_zip_member(writer, member, tar.extractfile(m), writer.tmp)
                elif is_audio_name(low):
                    s = tar.extractfile(m)
                    if s is None:
                        writer.skip(member, "unreadable tar member")
                        continue
                    writer.add_stream(member, s, m.size)
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        if proc.wait() != 0:
            raise DebianError(f"dpkg-deb --fsys-tarfile {deb} failed: {err.strip()[-500:]}")
    except tarfile.TarError as e:
        proc.kill()
        proc.wait()
        writer.abort()
        raise DebianError(f"{deb}: not a valid Debian package ({e}); delete it to re-download") from None
    except BaseException:
        proc.kill()
        proc.wait()
        writer.abort()
        raise
    return writer.commit()


def _extract_zip_member(writer: ExtractionWriter, member: str, stream, scratch: Path) -> None:
    """Spool a zip member to disk (zip needs random access), pull its audio, delete it."""
    if stream is None:
        writer.skip(member, "unreadable tar member")
        return
    fd, tmpname = tempfile.mkstemp(suffix=".zip", dir=scratch)
    try:
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(stream, out, 1 << 22)
        writer.add_zip_audio(member, Path(tmpname))
    finally:
        os.unlink(tmpname)
