"""Content hashes of files (the stage guard, adapt's records, the S-SONDO teacher cache, model cards)."""

import hashlib
import os
from typing import Iterable

BLOCK = 1 << 22


def files_sha256(paths: Iterable[os.PathLike]) -> str:
    """sha256 (hex) of the files' bytes, read in order as one stream."""
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(BLOCK), b""):
                h.update(block)
    return h.hexdigest()


def file_sha256(path: os.PathLike) -> str:
    """sha256 (hex) of one file's bytes."""
    return files_sha256([path])
