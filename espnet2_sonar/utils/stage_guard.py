#!/usr/bin/env python3
"""Provenance guard for recipe outputs: a trained dir records what made it, and a rerun
with other inputs stops instead of silently reusing (or resuming) it.

    python -m espnet2_sonar.utils.stage_guard check  --dir exp/tseed0/sonar/music \\
        --config conf/tiny/train_sonar.yaml --args "sonar_train --seed 0 ..." \\
        --inputs "train_list=exp/tseed0/sonar/music/lists/train/wav.scp ..."
    python -m espnet2_sonar.utils.stage_guard record ...   (same arguments)

``sonar.sh``'s ``train_model`` skips a dir holding ``.done`` and resumes one that does not
(ESPnet ``--resume true``). Without a guard, editing a YAML (or the training args, or
retraining the stage a dir was initialised from) and rerunning would reuse the old model
under the new settings' name. So before training, ``record`` writes ``DIR/stage_inputs.json``:

* ``config``: the config file's path, content sha256 and text (ESPnet's own ``config.yaml``
  in the dir holds the *resolved* arguments, but is rewritten by every resumed run, so it
  cannot tell what the dir was first trained with);
* ``args``: the training arguments as words (``--args`` is split like a shell would);
* ``inputs``: NAME -> path and content sha256 for every ``--inputs`` entry (the data lists)
  and for every existing file an argument refers to (init checkpoints, given as ``PATH``,
  ``key=PATH`` or ``PATH:src:dst``), named by that path.

``check`` recomputes the same and compares it with the record of a dir that holds trained
state (``.done`` or any ``*.pth``). A difference is an error naming the dir and each
differing key (exit status 1): the dir must be removed, or the run given another
``--tag`` (a separate experiment dir). A dir without trained state (say, a run that failed
at start-up on a config typo) is free to be retrained with other inputs, and a trained dir
without a record (trained before this guard existed) passes; ``record`` then adopts it,
marking the record ``"adopted": true`` (its inputs were not seen before training).

Hashing: sha256 of the file content, streamed; cached in ``DIR/.sha256_cache.json`` keyed
by (real path, size, mtime_ns, inode), so a rerun does not read multi-hundred-MB
checkpoints again. (Only a file rewritten with the same size within one mtime tick, which
is nanoseconds on common Linux filesystems, would fool the cache, as it would fool make.)
"""

import argparse
import datetime
import difflib
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Dict, Iterable, List, Optional

from espnet2_sonar.utils.atomic_write import atomic_write
from espnet2_sonar.utils.cli import name_path_pairs
from espnet2_sonar.utils.hashing import file_sha256

RECORD_NAME = "stage_inputs.json"
HASH_CACHE_NAME = ".sha256_cache.json"
RECORD_FORMAT = 1
DEFAULT_HINT = "remove the dir to retrain it, or use --tag NAME (a separate experiment dir)"
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".safetensors")


class HashCache:
    """sha256 of files, memoised in a JSON file keyed by (real path, size, mtime_ns, inode).

    ``cache_file=None`` memoises in this process only. Entries of files that changed are
    recomputed and replaced; ``save()`` writes the file atomically (a lost update from a
    concurrent writer only costs a rehash).
    """

    def __init__(self, cache_file: Optional[os.PathLike] = None):
        self.cache_file = None if cache_file is None else Path(cache_file)
        self.entries: Dict[str, dict] = {}
        self.hashed: List[str] = []
        """Real paths whose content was read in this process (cache misses); tests look at it."""
        self._dirty = False
        if self.cache_file is not None and self.cache_file.is_file():
            try:
                self.entries = dict(json.loads(self.cache_file.read_text()))
            except (ValueError, TypeError, OSError):
                self.entries = {}  # unreadable cache: rehash

    def sha256(self, path: os.PathLike) -> str:
        """Content sha256 (hex) of ``path``; ``FileNotFoundError`` naming it if absent."""
        real = os.path.realpath(path)
        try:
            st = os.stat(real)
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no such file (an input of a guarded stage)") from None
        stamp = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ino": st.st_ino}
        entry = self.entries.get(real)
        if entry and all(entry.get(k) == v for k, v in stamp.items()) and entry.get("sha256"):
            return entry["sha256"]
        digest = file_sha256(real)
        self.entries[real] = dict(stamp, sha256=digest)
        self.hashed.append(real)
        self._dirty = True
        return digest

    def save(self) -> None:
        if self.cache_file is None or not self._dirty or not self.cache_file.parent.is_dir():
            return
        atomic_write(self.cache_file, json.dumps(self.entries, indent=1, sort_keys=True) + "\n")
        self._dirty = False


def referenced_files(words: Iterable[str]) -> List[str]:
    """Existing files that argument words refer to, in order, each once.

    A word ``PATH``, ``key=PATH`` or ``PATH:src:dst`` (ESPnet's ``--init_param``) refers
    to PATH when PATH names an existing file and contains a ``/`` or ends like a checkpoint
    (so a value such as ``--seed 0`` never matches a stray file named ``0``).
    """
    found: List[str] = []
    for word in words:
        value = word.rpartition("=")[2]
        for cand in (value, value.partition(":")[0]):
            if cand and ("/" in cand or cand.endswith(CHECKPOINT_SUFFIXES)) and os.path.isfile(cand):
                if cand not in found:
                    found.append(cand)
                break
    return found


def parse_inputs(text: str) -> Dict[str, str]:
    """``"name=path ..."`` -> dict (empty text: no inputs); ``ValueError`` for a malformed or
    repeated entry (``utils.cli.name_path_pairs``)."""
    return name_path_pairs(text, "--inputs") if text.split() else {}


def describe(config: str, args: str, inputs: Dict[str, str], cache: HashCache) -> dict:
    """What a stage is made from now (the comparable part of a record)."""
    words = shlex.split(args)
    config_path = Path(config)
    if not config_path.is_file():
        raise FileNotFoundError(f"config {config} does not exist")
    every = dict(inputs)
    for path in referenced_files(words):
        every.setdefault(path, path)
    return {
        "format": RECORD_FORMAT,
        "config": {"path": str(config), "sha256": cache.sha256(config_path), "text": config_path.read_text()},
        "args": words,
        "inputs": {name: {"path": path, "sha256": cache.sha256(path)} for name, path in every.items()},
    }


def _short(sha: Optional[str]) -> str:
    return f"{sha[:12]}.." if sha else "none"


_MISSING = object()
"""A key absent from one side of a YAML comparison."""


def _yaml_key_changes(old_text: str, new_text: str, limit: int = 8) -> List[str]:
    """Dotted keys whose values differ between two YAML texts (empty if either does not parse)."""
    try:
        import yaml

        old, new = yaml.safe_load(old_text), yaml.safe_load(new_text)
    except Exception:  # not YAML, or PyYAML missing: the hash alone is reported
        return []
    keys: List[str] = []

    def walk(a, b, prefix):
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b), key=str):
                walk(a.get(k, _MISSING), b.get(k, _MISSING), f"{prefix}.{k}" if prefix else str(k))
        elif a != b:
            keys.append(prefix or "<document>")

    walk(old, new, "")
    return keys[:limit] + ([f"... ({len(keys) - limit} more)"] if len(keys) > limit else [])


def _args_changes(old: List[str], new: List[str]) -> str:
    """The changed stretches of two word lists, as ``'old words' -> 'new words'``."""
    parts = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
        if op != "equal":
            parts.append(f"{shlex.join(old[i1:i2])!r} -> {shlex.join(new[j1:j2])!r}")
    return ", ".join(parts)


def differences(recorded: dict, current: dict) -> List[str]:
    """Human-readable differences between a record and the current inputs (empty: same),
    each naming its key: ``config``, ``args`` or ``input NAME``."""
    diffs: List[str] = []
    old_cfg, new_cfg = recorded.get("config") or {}, current["config"]
    if old_cfg.get("sha256") != new_cfg["sha256"]:
        where = new_cfg["path"] if old_cfg.get("path") in (None, new_cfg["path"]) else f"{old_cfg['path']} -> {new_cfg['path']}"
        detail = f"sha256 {_short(old_cfg.get('sha256'))} -> {_short(new_cfg['sha256'])}"
        keys = _yaml_key_changes(old_cfg.get("text") or "", new_cfg["text"]) if old_cfg.get("text") is not None else []
        if keys:
            detail += f"; keys: {', '.join(keys)}"
        diffs.append(f"config {where} changed ({detail})")
    old_args = recorded.get("args")
    if old_args != current["args"]:
        diffs.append(f"args changed ({_args_changes(list(old_args or []), current['args'])})")
    old_in, new_in = recorded.get("inputs") or {}, current["inputs"]
    for name in list(old_in) + [n for n in new_in if n not in old_in]:
        entry = new_in.get(name) or old_in[name]
        label = name if entry.get("path") == name else f"{name} {entry.get('path')}"  # a referenced file is named by its path
        if name not in new_in:
            diffs.append(f"input {label} is no longer given")
        elif name not in old_in:
            diffs.append(f"input {label} is new")
        elif old_in[name].get("sha256") != new_in[name]["sha256"]:
            diffs.append(
                f"input {label} changed (sha256 {_short(old_in[name].get('sha256'))} -> {_short(new_in[name]['sha256'])})"
            )
    return diffs


def has_trained_state(directory: Path) -> bool:
    """Does ``directory`` hold a finished (``.done``) or partly trained (``*.pth``) model?"""
    return (directory / ".done").exists() or any(directory.glob("*.pth"))


def read_record(directory: Path) -> Optional[dict]:
    path = directory / RECORD_NAME
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise ValueError(f"{path}: unreadable ({e}); remove it or the dir") from None


class StaleStageError(RuntimeError):
    """A trained dir's recorded inputs differ from the current ones."""


def check(directory: os.PathLike, config: str, args: str, inputs: Dict[str, str], hint: str = DEFAULT_HINT) -> List[str]:
    """Raise ``StaleStageError`` (message: the dir, each differing key, ``hint``) when
    ``directory`` holds trained state recorded from other inputs; else return notes (e.g.
    that an unrecorded or untrained dir was not compared)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    recorded = read_record(directory)
    trained = has_trained_state(directory)
    if recorded is None:
        return [f"{directory}: trained before its inputs were recorded; not compared"] if trained else []
    if not trained:
        return []  # nothing trained yet: the record is simply rewritten
    cache = HashCache(directory / HASH_CACHE_NAME)
    try:
        diffs = differences(recorded, describe(config, args, inputs, cache))
    finally:
        cache.save()
    if diffs:
        raise StaleStageError(f"{directory}: trained from other inputs: {'; '.join(diffs)}; {hint}")
    return []


def record(directory: os.PathLike, config: str, args: str, inputs: Dict[str, str]) -> dict:
    """Write ``directory/stage_inputs.json`` for the current inputs (the dir is created).

    Keeps an existing record whose inputs are the same (its time and ``adopted`` flag stay
    true to when the dir was first trained); a dir that already holds trained state but no
    record is adopted (``"adopted": true``). Returns the record on disk.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cache = HashCache(directory / HASH_CACHE_NAME)
    try:
        current = describe(config, args, inputs, cache)
    finally:
        cache.save()
    previous = read_record(directory)
    if previous is not None and not differences(previous, current):
        return previous
    rec = dict(
        current,
        recorded_at=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        adopted=previous is None and has_trained_state(directory),
    )
    atomic_write(directory / RECORD_NAME, json.dumps(rec, indent=2) + "\n")
    return rec


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=("check", "record"))
    p.add_argument("--dir", required=True, help="the stage's output dir")
    p.add_argument("--config", required=True, help="the stage's config file")
    p.add_argument("--args", default="", help="the training args, as one shell-quoted string")
    p.add_argument("--inputs", default="", help='"NAME=PATH ..." further inputs hashed by content (data lists)')
    p.add_argument("--hint", default=DEFAULT_HINT, help="what to do, appended to a check's error")
    a = p.parse_args(argv)
    try:
        inputs = parse_inputs(a.inputs)
        if a.action == "check":
            for note in check(a.dir, a.config, a.args, inputs, a.hint):
                print(f"stage_guard: {note}", file=sys.stderr)
        else:
            record(a.dir, a.config, a.args, inputs)
    except (StaleStageError, ValueError, FileNotFoundError) as e:
        print(f"stage_guard: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
