"""atomic_write / atomic_path: write a file so readers see the old or the new one, never half.

The content goes to a temp file beside the target (same directory, so the same file system),
then ``os.replace`` swaps it in. On an error the temp file is removed and the target is left
as it was. Temp names are ``.{name}.{pid}.tmp`` (hidden, never ending in the target's suffix,
so globs such as ``*.pt`` or ``*.flac`` do not pick them up).
"""

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Union

PathLike = Union[str, "os.PathLike[str]"]


def temp_path(path: PathLike, suffix: str = "") -> Path:
    """The temp name ``atomic_path`` uses for ``path``: ``.{name}.{pid}.tmp{suffix}`` beside it."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp{suffix}")


@contextmanager
def atomic_path(path: PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temp path to write; on success it replaces ``path``, on an error it is removed.

    ``suffix`` is appended to the temp name for writers that add one when it is missing
    (``np.savez`` adds ``.npz``). The parent directory must exist.

        with atomic_path(out) as tmp:
            torch.save(obj, tmp)
    """
    tmp = temp_path(path, suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: PathLike, data: Union[str, bytes], encoding: str = "utf-8") -> None:
    """Write ``data`` (text, or bytes) to ``path`` atomically (see the module docstring)."""
    with atomic_path(path) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding=encoding)
