"""s3prl hub entries for BEATs checkpoints (registered into ``s3prl.hub`` by the package).

``sonar_local(ckpt)``: a local official ``.pt``, ESPnet ``.pth`` or ESPnet exp dir.
``sonar_url(ckpt)``: an http(s) URL of an official-format ``.pt``; downloaded once with
torch.hub's downloader into ``<torch.hub.get_dir()>/espnet2_sonar/`` (``refresh=True``
downloads again), then loaded as ``sonar_local``.
``sonar_custom(ckpt)``: ``sonar_url`` for URLs, ``sonar_local`` otherwise.
"""

import hashlib
from pathlib import Path
from urllib.parse import urlparse

from espnet2_sonar.utils.atomic_write import atomic_path

from .expert import UpstreamExpert as _UpstreamExpert


def sonar_local(ckpt: str, *args, **kwargs) -> _UpstreamExpert:
    """BEATs upstream from a local checkpoint file or ESPnet exp dir."""
    if ckpt is None or not Path(ckpt).exists():
        raise FileNotFoundError(f"sonar_local: checkpoint {ckpt} does not exist")
    return _UpstreamExpert(ckpt, *args, **kwargs)


def _url_cache_path(url: str) -> Path:
    import torch

    name = Path(urlparse(url).path).name or "checkpoint.pt"
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    return Path(torch.hub.get_dir()) / "espnet2_sonar" / f"{digest}_{name}"


def sonar_url(ckpt: str, *args, refresh: bool = False, **kwargs) -> _UpstreamExpert:
    """BEATs upstream from a checkpoint URL (downloaded to the torch.hub cache first)."""
    import torch

    if not str(ckpt).startswith(("http://", "https://")):
        raise ValueError(f"sonar_url: expected an http(s) URL, got {ckpt!r} (use sonar_local for files)")
    dst = _url_cache_path(ckpt)
    if refresh or not dst.is_file():
        dst.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(dst) as tmp:
            torch.hub.download_url_to_file(ckpt, str(tmp), progress=True)
    return sonar_local(str(dst), *args, **kwargs)


def sonar_custom(ckpt: str, *args, **kwargs) -> _UpstreamExpert:
    """``sonar_url`` for http(s) URLs, ``sonar_local`` for paths."""
    if str(ckpt).startswith(("http://", "https://")):
        return sonar_url(ckpt, *args, **kwargs)
    return sonar_local(ckpt, *args, **kwargs)
