"""``resolve_checkpoint_path(spec)``: a local path, or a file on the Hugging Face Hub fetched into its cache.

Accepted Hub specs (anything else is a local path, returned as it is):

    hf://OWNER/REPO/PATH/IN/REPO            main branch
    hf://OWNER/REPO@REVISION/PATH/IN/REPO   a branch, tag or commit (the Hub's own hf:// form)
    hf://OWNER/REPO/PATH/IN/REPO@REVISION   the same, revision last
    hf://datasets/OWNER/REPO/PATH           a dataset (or spaces/) repository
    https://huggingface.co/OWNER/REPO/resolve/REVISION/PATH   (or /blob/; datasets/ too)

``hf:/`` and ``https:/`` with one slash are read the same: that is what ``pathlib.Path`` makes
of a spec, so command-line options typed as paths pass specs through intact.

Files are fetched with ``huggingface_hub.hf_hub_download`` into the Hub cache
(``HF_HUB_CACHE``, else ``HF_HOME/hub``, else ``~/.cache/huggingface/hub``) and read from
there next time. With ``HF_HUB_OFFLINE=1`` only the cache is read. A file that can be neither
downloaded nor found in the cache raises ``HubFileUnavailable`` naming the spec, the cache
directory and what to do.
"""

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

_URL_RE = re.compile(
    r"https?:/{1,2}(?:www\.)?huggingface\.co/(?:(?P<type>datasets|spaces)/)?"
    r"(?P<repo>[^/]+/[^/]+)/(?:resolve|blob)/(?P<rev>[^/]+)/(?P<path>.+)"
)
_REPO_TYPES = {"datasets": "dataset", "spaces": "space"}


class HubFileUnavailable(FileNotFoundError):
    """A Hub file that could not be downloaded and is not in the local cache."""


@dataclass(frozen=True)
class HubFile:
    """A file in a Hugging Face Hub repository."""

    repo_id: str
    filename: str
    revision: Optional[str] = None
    repo_type: Optional[str] = None
    """None (a model), ``dataset`` or ``space``."""


def parse_hub_spec(spec: str) -> Optional[HubFile]:
    """The Hub file named by ``spec`` (see module doc), or None when ``spec`` is not a Hub spec.

    Raises ``ValueError`` for a spec that starts like one but names no file.
    """
    spec = str(spec)
    m = _URL_RE.fullmatch(spec.split("?", 1)[0])
    if m:
        return HubFile(m["repo"], m["path"], m["rev"], _REPO_TYPES.get(m["type"] or ""))
    if re.match(r"https?:/{1,2}(www\.)?huggingface\.co/", spec):
        raise ValueError(f"{spec}: a Hugging Face URL must point to a file: .../OWNER/REPO/resolve/REVISION/PATH")
    if not spec.startswith("hf:/"):
        return None
    parts = spec[len("hf:/") :].lstrip("/").split("/")
    repo_type = None
    if parts and parts[0] in _REPO_TYPES:
        repo_type = _REPO_TYPES[parts.pop(0)]
    if len(parts) < 3 or not all(parts):
        raise ValueError(f"{spec}: expected hf://OWNER/REPO[@REVISION]/PATH/IN/REPO")
    owner, repo, path = parts[0], parts[1], "/".join(parts[2:])
    revision = None
    if "@" in repo:
        repo, revision = repo.split("@", 1)
    elif "@" in parts[-1]:
        path, revision = path.rsplit("@", 1)
    if not repo or not path or revision == "":
        raise ValueError(f"{spec}: expected hf://OWNER/REPO[@REVISION]/PATH/IN/REPO")
    return HubFile(f"{owner}/{repo}", path, revision, repo_type)


def hub_cache_dir() -> Path:
    """The Hub cache directory, read from the environment at call time."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path("~/.cache/huggingface/hub").expanduser()


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set to a true value."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().lower() in ("1", "true", "yes", "on")


def resolve_checkpoint_path(spec: str | Path) -> Path:
    """A local file for ``spec``: a Hub spec is downloaded (or read from the cache); anything
    else is returned as a ``Path`` unchanged (existence is the caller's check)."""
    hub = parse_hub_spec(str(spec))
    if hub is None:
        return Path(spec).expanduser()
    from huggingface_hub import hf_hub_download

    cache, offline = hub_cache_dir(), hub_offline()
    try:
        return Path(
            hf_hub_download(
                hub.repo_id,
                hub.filename,
                revision=hub.revision,
                repo_type=hub.repo_type,
                cache_dir=cache,
                local_files_only=offline,
            )
        )
    except Exception as e:  # noqa: BLE001 -- every Hub failure (offline, missing, network) gets one message
        how = (
            "HF_HUB_OFFLINE is set, so only the cache is read"
            if offline
            else "it could not be downloaded (no network, or no such repo/file/revision)"
        )
        raise HubFileUnavailable(
            f"{spec}: Hugging Face file {hub.filename!r} of {hub.repo_id}"
            f"{'@' + hub.revision if hub.revision else ''} is not in the local cache {cache} and {how} "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). Download it where there "
            f"is network (`hf download {hub.repo_id} {hub.filename}` with the same HF_HOME / "
            "HF_HUB_CACHE) and copy the cache here, or pass the local file path instead."
        ) from e
