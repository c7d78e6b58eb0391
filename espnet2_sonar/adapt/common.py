"""What the adapt pipeline and its report share: options, output layout, base-model record,
step timing and small atomic-file helpers (a bottom module: it imports neither)."""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Optional

from espnet2_sonar.utils.atomic_write import atomic_path, atomic_write
from espnet2_sonar.utils.hashing import file_sha256

log = logging.getLogger("espnet2_sonar.adapt")


REPO = Path(__file__).resolve().parents[2]
CONF_DIR = REPO / "conf"
METHODS = ("sonar", "dcp")
_ARCH_KEYS = ("encoder_layers", "encoder_embed_dim", "encoder_ffn_embed_dim", "encoder_attention_heads")

NO_PRIOR_NOTE = (
    "No --prior_audio was given. SONAR's replay (task-relevant stratified replay sampling) needs "
    "audio of the old domain, so training runs without replay (rho = 0). SONAR's two distillation "
    "losses still hold the model to the base: L_model (the frozen base encoder's features) and L_tok "
    "(the frozen base tokenizer's codes), but both are computed on the new audio only; nothing "
    "constrains the features of old-domain audio directly, so forgetting is unguarded by replay. "
    "Drift is measured on held-out new-domain clips only: how far the features moved, not a measure "
    "of forgetting. Give --prior_audio DIR (audio like the base model's pre-training data, e.g. a few "
    "hundred AudioSet-like clips) to enable replay and old-domain drift."
)
NO_PRIOR_NOTE_DCP = (
    "No --prior_audio was given. DCP never replays; without old-domain audio, drift is measured on "
    "held-out new-domain clips only (how far the features moved, not a measure of forgetting)."
)


class AdaptError(RuntimeError):
    """A bad input or a failed step; the message names the file and what to do."""


@dataclass
class AdaptOptions:
    """Inputs of one adaptation (the command-line options of ``bin/adapt``)."""

    base_ckpt: Path
    new_audio: Path
    out_dir: Path
    prior_audio: Optional[Path] = None
    method: str = "sonar"
    config: Optional[Path] = None
    tokenizer_config: Optional[Path] = None
    base_tokenizer: Optional[Path] = None
    probe_tasks: Optional[Path] = None
    nj: int = 2
    ngpu: int = 0
    train_args: str = ""
    sample_args: str = "--max_seconds 4 --num_strata 32"
    seed: int = 0
    heldout_share: float = 0.1
    valid_share: float = 0.05
    skip_bad_audio: bool = False
    segment_seconds: float = 10.0
    max_recording_seconds: float = 600.0
    min_seconds: float = 0.25
    drift_max_clips: int = 40
    drift_max_seconds: float = 4.0
    probe_seeds: str = "0"
    probe_max_per_class: int = 200
    progress: bool = True
    command: str = ""


class Layout:
    """Paths under OUT_DIR (see the module doc)."""

    def __init__(self, out: Path, method: str):
        self.out = out
        self.encoder, self.tokenizer = out / "encoder.pt", out / "tokenizer.pt"
        self.report_md, self.report_json = out / "report.md", out / "report.json"
        self.run_json, self.timings = out / "run.json", out / "timings.json"
        self.data = out / "data"
        self.new, self.prior = self.data / "new", self.data / "prior"
        self.prior_train, self.prior_heldout = self.data / "prior_train", self.data / "prior_heldout"
        self.base = out / "base"
        self.base_encoder, self.base_tokenizer = self.base / "encoder.pt", self.base / "tokenizer.pt"
        self.replay = out / "replay"
        self.lists = out / "lists" / "train"
        self.tokenizer_lists = out / "lists" / "tokenizer"
        self.exp = out / "exp" / method
        self.tokenizer_exp = out / "exp" / "tokenizer"
        self.eval = out / "eval"
        self.cache = out / "cache"


# ---------------------------------------------------------------- small helpers

def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


_sha256 = file_sha256


def write_json(path: Path, data) -> None:
    """Atomic JSON write (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(data, indent=2, default=str) + "\n")


def _copy_atomic(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def _fresh_tmp_dir(final: Path) -> Path:
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    for stale in final.parent.glob(f".{final.name}.tmp-*"):  # left by an interrupted run
        shutil.rmtree(stale, ignore_errors=True)
    return tmp


def _replace_dir(tmp: Path, final: Path) -> None:
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


@contextlib.contextmanager
def _quiet_stdout():
    """Collect what the toolkit's command-line mains print (logged instead)."""
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        yield buf


@contextlib.contextmanager
def _lock(out: Path):
    import fcntl

    out.mkdir(parents=True, exist_ok=True)
    f = open(out / ".adapt.lock", "w")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise AdaptError(f"{out}: another adapt run is using this output dir ({out / '.adapt.lock'} is locked)")
    try:
        yield
    finally:
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()


class _Step:
    def __init__(self):
        self.skipped: Optional[str] = None

    def skip(self, why: str) -> None:
        self.skipped = why


class StepTimer:
    """Wall time of each step: this run's (``run``) and, in ``timings.json``, the latest run
    that did the step's work (a resumed run skips finished steps)."""

    def __init__(self, path: Path, command: str):
        self.path, self.command = path, command
        try:
            self.saved: Dict[str, dict] = json.loads(path.read_text()) if path.is_file() else {}
        except (OSError, json.JSONDecodeError):
            self.saved = {}
        self.run: Dict[str, dict] = {}

    @contextlib.contextmanager
    def step(self, name: str):
        log.info("step: %s", name)
        handle, t0 = _Step(), time.time()
        yield handle
        seconds = round(time.time() - t0, 2)
        if handle.skipped:
            log.info("step: %s skipped (%s)", name, handle.skipped)
            self.run[name] = {"status": f"skipped: {handle.skipped}", "seconds": seconds}
        else:
            self.run[name] = {"status": "ran", "seconds": seconds}
            self.saved[name] = {"seconds": seconds, "finished": _now(), "command": self.command}
            write_json(self.path, self.saved)


# ---------------------------------------------------------------- base model

@dataclass
class BaseModel:
    source: str
    encoder: Path
    tokenizer: Path
    size: str
    size_exact: bool
    cfg: dict
    sha256: str
    stripped_head: bool = False
    tokenizer_kind: str = ""  # given | beside | distilled
    tokenizer_source: Optional[str] = None



def options_dict(opts: AdaptOptions) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()}


__all__ = ["AdaptError", "AdaptOptions", "Layout", "adapt", "detect_size", "prepare_base", "tokenizer_choice",
           "NO_PRIOR_NOTE"]
