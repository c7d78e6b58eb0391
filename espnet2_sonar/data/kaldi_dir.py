"""Kaldi-style data dirs: write (atomically), read and validate.

A dir holds ``wav.scp`` (utt -> absolute audio path), ``utt2spk``, ``spk2utt``,
``utt2dur`` (seconds) and, for labelled sets, ``utt2label``; all sorted by utterance id.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from espnet2_sonar.data.audio import SAMPLE_RATE, AudioFileError, audio_info

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+\-]*$")


@dataclass(frozen=True)
class Utterance:
    """One line of each file of a data dir."""

    utt_id: str
    path: str  # absolute path of a 16 kHz mono audio file
    spk: str
    duration: float  # seconds
    label: str | None = None


class KaldiDirError(ValueError):
    """A malformed data dir; the message names the file (and line) and the problem."""


def write_kaldi_dir(path: str | Path, utts: list[Utterance], labelled: bool) -> Path:
    """Write ``utts`` as a data dir at ``path``, replacing it atomically (temp dir + rename)."""
    path = Path(path)
    utts = sorted(utts, key=lambda u: u.utt_id)
    ids = [u.utt_id for u in utts]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})[:3]
        raise KaldiDirError(f"{path}: duplicate utterance ids {dup}")
    for u in utts:
        if not _ID.match(u.utt_id) or not _ID.match(u.spk):
            raise KaldiDirError(f"{path}: bad id (utt {u.utt_id!r}, spk {u.spk!r}): use [A-Za-z0-9_.+-]")
        if not os.path.isabs(u.path) or any(c.isspace() for c in u.path):
            raise KaldiDirError(f"{path}: utterance {u.utt_id}: path must be absolute without spaces: {u.path!r}")
        if labelled and not u.label:
            raise KaldiDirError(f"{path}: utterance {u.utt_id} has no label")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    _write(tmp / "wav.scp", [(u.utt_id, u.path) for u in utts])
    _write(tmp / "utt2spk", [(u.utt_id, u.spk) for u in utts])
    _write(tmp / "utt2dur", [(u.utt_id, f"{u.duration:.4f}") for u in utts])
    spk2utt: dict[str, list[str]] = {}
    for u in utts:
        spk2utt.setdefault(u.spk, []).append(u.utt_id)
    _write(tmp / "spk2utt", [(s, " ".join(v)) for s, v in sorted(spk2utt.items())])
    if labelled:
        for u in utts:
            if any(c.isspace() for c in u.label):
                raise KaldiDirError(f"{path}: label {u.label!r} of {u.utt_id} contains whitespace")
        _write(tmp / "utt2label", [(u.utt_id, u.label) for u in utts])
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)
    return path


def _write(file: Path, rows: list[tuple[str, str]]) -> None:
    file.write_text("".join(f"{k} {v}\n" for k, v in rows), encoding="utf-8")


def read_table(file: str | Path) -> dict[str, str]:
    """``<key> <value>`` lines -> ordered dict; errors name the file and line.

    The toolkit's one reader of Kaldi tables (wav.scp, utt2label, utt2dur, ...): a missing
    file raises FileNotFoundError, a malformed line or a repeated key KaldiDirError.
    """
    file = Path(file)
    if not file.is_file():
        raise FileNotFoundError(f"{file}: missing")
    out: dict[str, str] = {}
    for n, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2:
            raise KaldiDirError(f"{file}:{n}: expected '<key> <value>', got {line!r}")
        if parts[0] in out:
            raise KaldiDirError(f"{file}:{n}: duplicate key {parts[0]!r}")
        out[parts[0]] = parts[1].strip()
    return out


def read_kaldi_dir(path: str | Path) -> list[Utterance]:
    """The utterances of a data dir (label None when there is no utt2label)."""
    path = Path(path)
    wav = read_table(path / "wav.scp")
    spk = read_table(path / "utt2spk")
    dur = read_table(path / "utt2dur")
    lab = read_table(path / "utt2label") if (path / "utt2label").exists() else {}
    for name, table in (("utt2spk", spk), ("utt2dur", dur)) + ((("utt2label", lab),) if lab else ()):
        if set(table) != set(wav):
            diff = sorted(set(table) ^ set(wav))[:3]
            raise KaldiDirError(f"{path / name}: utterance ids differ from wav.scp, e.g. {diff}")
    out = []
    for k, p in wav.items():
        try:
            d = float(dur[k])
        except ValueError:
            raise KaldiDirError(f"{path / 'utt2dur'}: {k}: not a number: {dur[k]!r}") from None
        out.append(Utterance(k, p, spk[k], d, lab.get(k)))
    return out


def validate_kaldi_dir(
    path: str | Path, labelled: bool, check_audio: bool = True, dur_tol: float = 0.01
) -> list[Utterance]:
    """Check a data dir: sorted, consistent files, labels, and (optionally) every audio file
    readable, 16 kHz mono, non-empty, with the duration in utt2dur. Raises with the first
    problem (file, utterance and reason); returns the utterances."""
    path = Path(path)
    utts = read_kaldi_dir(path)
    if not utts:
        raise KaldiDirError(f"{path}: empty data dir")
    ids = [u.utt_id for u in utts]
    if ids != sorted(ids):
        raise KaldiDirError(f"{path / 'wav.scp'}: not sorted by utterance id")
    if labelled and not (path / "utt2label").exists():
        raise KaldiDirError(f"{path / 'utt2label'}: missing for a labelled set")
    for u in utts:
        if labelled and not u.label:
            raise KaldiDirError(f"{path / 'utt2label'}: {u.utt_id} has an empty label")
        if not os.path.isabs(u.path):
            raise KaldiDirError(f"{path / 'wav.scp'}: {u.utt_id}: path is not absolute: {u.path}")
        if u.duration <= 0:
            raise KaldiDirError(f"{path / 'utt2dur'}: {u.utt_id}: non-positive duration {u.duration}")
        if not check_audio:
            continue
        try:
            info = audio_info(u.path)
        except AudioFileError as e:
            raise KaldiDirError(f"{path / 'wav.scp'}: {u.utt_id}: {e}") from None
        if info.sample_rate != SAMPLE_RATE or info.channels != 1:
            raise KaldiDirError(
                f"{path / 'wav.scp'}: {u.utt_id}: {u.path} is {info.sample_rate} Hz, "
                f"{info.channels} channel(s); expected {SAMPLE_RATE} Hz mono")
        if abs(info.duration - u.duration) > dur_tol:
            raise KaldiDirError(
                f"{path / 'utt2dur'}: {u.utt_id}: {u.duration:.4f} s but {u.path} lasts {info.duration:.4f} s")
    return utts
