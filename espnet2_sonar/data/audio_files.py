"""Audio files in a user's folder: which extensions count, the recursive scan, and stable ids.

Shared by the folder recipe's corpus builder (``data/folder_corpus.py``) and ``adapt``'s pool
scan (``adapt/scan.py``), so both accept the same files and name them the same way.
"""

import hashlib
import os
import re
from pathlib import Path, PurePosixPath
from typing import Iterable, List, Optional, Sequence, Tuple

NEEDS_FFMPEG = frozenset({".m4a", ".aac", ".mp4", ".wma", ".webm", ".amr", ".ape", ".wv", ".mka"})
"""Audio formats libsndfile cannot decode: found by the scan so they are reported as unreadable
(with a hint to convert them), never silently ignored."""
AUDIO_EXTENSIONS = frozenset({
    ".wav", ".wave", ".bwf", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc",
    ".au", ".snd", ".caf", ".w64", ".rf64", ".voc", ".sd2", ".nist", ".sph", ".htk", ".gsm",
}) | NEEDS_FFMPEG
"""Every extension the scan treats as audio (any case): what libsndfile decodes, and ``NEEDS_FFMPEG``."""


def sanitize(text: str, limit: int = 48) -> str:
    """``text`` as a Kaldi/file-name-safe piece: runs of other characters become ``_``, at most
    ``limit`` characters, never empty."""
    s = re.sub(r"[^A-Za-z0-9_.+-]+", "_", text).strip("_.-+")
    return (s or "x")[:limit]


def recording_id(prefix: str, rel: str, *, stem_limit: int, prefix_limit: Optional[int] = None) -> str:
    """Stable whitespace-free id of the file at ``rel`` (POSIX path, relative to its folder).

    ``<prefix>-<sanitized stem>-<sha1(rel)[:8]>``: the digest keeps files whose names sanitize
    alike apart. ``prefix`` is sanitized to ``prefix_limit`` characters when given, else used as is.
    """
    stem = sanitize(str(PurePosixPath(rel).with_suffix("")), stem_limit)
    head = prefix if prefix_limit is None else sanitize(prefix, prefix_limit)
    return f"{head}-{stem}-{hashlib.sha1(rel.encode('utf-8')).hexdigest()[:8]}"


def _inside(path: Path, folders: Sequence[Path]) -> bool:
    return any(path == f or f in path.parents for f in folders)


def find_audio(root: str | Path, exclude: Iterable[str | Path] = (), progress: bool = False) -> Tuple[List[Path], int]:
    """Audio files under ``root`` (recursive, sorted by relative path) and the number of other files.

    Hidden files and folders are skipped (counted as other files when files); symlinked folders
    are followed once (a loop or a folder linked twice is read once); folders in ``exclude`` are
    not entered.

    Raises:
        FileNotFoundError / NotADirectoryError naming ``root``.
    """
    from tqdm import tqdm

    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such folder")
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a folder (give the folder that holds the audio)")
    excluded = [Path(e).resolve() for e in exclude]
    files: List[Path] = []
    ignored = 0
    seen = set()
    with tqdm(desc=f"scanning {root}", unit=" dirs", disable=not progress) as bar:
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            real = Path(dirpath).resolve()
            if real in seen:  # a symlink loop or a folder linked twice
                dirnames[:] = []
                continue
            seen.add(real)
            bar.update(1)
            dirnames[:] = sorted(n for n in dirnames
                                 if not n.startswith(".") and not (excluded and _inside((real / n).resolve(), excluded)))
            for name in filenames:
                if not name.startswith(".") and Path(name).suffix.lower() in AUDIO_EXTENSIONS:
                    files.append(Path(dirpath) / name)
                else:
                    ignored += 1
    return sorted(files, key=lambda p: p.relative_to(root).as_posix()), ignored
