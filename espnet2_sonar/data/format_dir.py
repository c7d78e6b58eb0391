"""A user's Kaldi-style data dir -> a dir of the recipe's data contract (16 kHz mono FLAC).

    from espnet2_sonar.data.format_dir import format_dir
    rep = format_dir("my/train", "data/tasks/birds/train", "data/audio_formatted/tasks/birds/train",
                     labelled=True, nj=2)

What the recipe's stages read is a dir whose ``wav.scp`` lists plain 16 kHz mono files (the
loader, ``espnet_loader``, opens paths with soundfile: no pipes, no ``segments``), with
``utt2dur`` beside it (training shapes). Corpora in the wild come as Kaldi/ESPnet dirs whose
``wav.scp`` may run commands and whose ``segments`` cut utterances out of long recordings.
This module materialises such a dir, with the semantics of ESPnet's
``egs2/TEMPLATE/asr1/pyscripts/audio/format_wav_scp.py`` (read, not copied):

* ``wav.scp``: ``<id> <value>``; the value is the rest of the line. A value ending in ``|``
  is a shell command whose stdout is the audio (a self-describing format soundfile reads:
  WAV, FLAC, OGG, ...); any other value is a file path (spaces allowed). Relative paths and
  commands run from ``cwd`` (the recipe dir, as in Kaldi).
* ``segments`` (optional): ``<utt> <recording> <start s> <end s>``, end ``-1`` meaning the
  end of the recording; utterances are then the segments (recordings no segment names are
  not used), otherwise every ``wav.scp`` entry is an utterance.
* ``utt2spk`` (optional; default: the recording, so the segments of one recording share a
  speaker) and ``utt2label`` (required for labelled sets) are carried over; ``spk2utt`` is
  rebuilt and ``utt2dur`` measured from the written audio. Other files are not read.
* Every utterance is decoded (a segment: only its span), averaged to mono (ESPnet keeps the
  channels unless told ``--ref_channels``; the contract is mono), resampled to 16 kHz and
  written as 16-bit FLAC under ``audio_dir``.

Differences from ESPnet, on purpose: bad input is an error naming the file and line (a
missing ``wav.scp``, a malformed line, an unreadable file, a failing command, a segment
with end <= start or outside its recording), where ESPnet logs and skips; ``skip_bad``
turns these into warnings and drops the utterance. Multi-column ``wav.scp`` (one file per
channel) and Kaldi ``ark`` inputs are not supported. Utterances shorter than ``min_s`` are
dropped with a warning (the corpus builder's rule: too short for the encoder's patches).

Idempotent: each output file's name carries a digest of what it is made from (the
``wav.scp`` value, the segment span and, for files, their size and mtime), so a rerun reuses
every finished file (written atomically by ``audio.write_audio``) and a changed input gets a
new file. A command is assumed to give the same audio for the same text. Finished dirs
are written atomically (``kaldi_dir.write_kaldi_dir``) and validated
(``kaldi_dir.validate_kaldi_dir``); files an earlier run wrote to ``audio_dir`` that are
no longer listed are removed (``MANIFEST``), other files there are left alone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from espnet2_sonar.data.audio import (
    SAMPLE_RATE,
    AudioFileError,
    audio_info,
    decode_audio,
    resample,
    to_mono,
    write_audio,
)
from espnet2_sonar.data.kaldi_dir import _ID, Utterance, validate_kaldi_dir, write_kaldi_dir
from espnet2_sonar.utils.atomic_write import atomic_write

log = logging.getLogger(__name__)

MAX_OVERSHOOT_S = 0.5
"""A segment may end this far past its recording (it is cut at the end), as Kaldi's
``extract-segments --max-overshoot`` allows; further is an error (wrong recording or times)."""
MIN_SECONDS = 0.25
"""Default shortest utterance kept (the corpus builder's ``min_clip_s``)."""


class FormatError(ValueError):
    """Bad input; the message names the dir or file (and line) and the problem."""


@dataclass(frozen=True)
class Piece:
    """One output utterance: a span of a recording (``end`` -1: to its end)."""

    utt: str
    start: float
    end: float
    where: str  # "<file>:<line>" of the line that defines it (segments, else wav.scp)
    out: str  # output FLAC


@dataclass(frozen=True)
class RecordingJob:
    """A recording (a ``wav.scp`` entry) and the utterances cut from it: one worker task,
    so a command runs once and a file is opened once however many segments it has."""

    rec: str
    value: str  # path or command (ending in "|")
    where: str  # "<wav.scp>:<line>"
    cwd: str
    pieces: Tuple[Piece, ...]
    min_s: float = MIN_SECONDS

    @property
    def is_pipe(self) -> bool:
        return self.value.endswith("|")


@dataclass(frozen=True)
class PieceResult:
    utt: str
    duration: Optional[float] = None  # seconds written; None when not kept
    error: Optional[str] = None  # bad input (names file:line)
    dropped: Optional[str] = None  # kept out on purpose (too short)
    reused: bool = False  # the output file was there from an earlier run


@dataclass
class FormatReport:
    """What ``format_dir`` wrote and left out."""

    src: Path
    dst: Path
    utts: List[Utterance] = field(default_factory=list)
    bad: List[str] = field(default_factory=list)  # messages of skipped bad input (skip_bad)
    dropped: List[str] = field(default_factory=list)  # too-short utterances
    reused: int = 0  # utterances whose FLAC was already there
    unused_recordings: int = 0  # wav.scp entries no segment refers to

    @property
    def minutes(self) -> float:
        return sum(u.duration for u in self.utts) / 60.0

    def summary(self) -> dict:
        labels = {u.label for u in self.utts if u.label}
        return {"src": str(self.src), "dst": str(self.dst), "clips": len(self.utts),
                "minutes": round(self.minutes, 3), "classes": len(labels), "reused": self.reused,
                "dropped_too_short": len(self.dropped), "skipped_bad": len(self.bad),
                "unused_recordings": self.unused_recordings}


# ---------------------------------------------------------------- reading the input dir

def _lines(file: Path):
    """(line number, text) of the non-blank lines of ``file``."""
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(f"{file}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            yield n, line.strip()


def _check_id(value: str, what: str, where: str) -> None:
    if not _ID.match(value):
        raise FormatError(f"{where}: {what} {value!r} is not a valid id (use letters, digits and _.+- , "
                          "starting with a letter or digit)")


def read_wav_scp(file: Path) -> Dict[str, Tuple[str, str]]:
    """``wav.scp`` -> {id: (value, "file:line")}; errors name the file and line."""
    if not file.is_file():
        raise FormatError(f"{file}: missing (a data dir needs wav.scp: '<id> <audio file>' or "
                          "'<id> <command> |' per line)")
    out: Dict[str, Tuple[str, str]] = {}
    for n, line in _lines(file):
        where = f"{file}:{n}"
        parts = line.split(maxsplit=1)
        if len(parts) != 2:
            raise FormatError(f"{where}: expected '<id> <audio file or command |>', got {line!r}")
        key, value = parts
        _check_id(key, "id", where)
        if key in out:
            raise FormatError(f"{where}: id {key!r} repeats (first at {out[key][1]})")
        if not value.endswith("|") and ".ark:" in value:
            raise FormatError(f"{where}: Kaldi ark inputs are not supported; give an audio file or a "
                              f"command ending in '|' ({value!r})")
        out[key] = (value, where)
    if not out:
        raise FormatError(f"{file}: empty (no utterances)")
    return out


def read_segments(file: Path, recordings: Dict[str, Tuple[str, str]]) -> Dict[str, Tuple[str, float, float, str]]:
    """``segments`` -> {utt: (recording, start, end, "file:line")}; end -1: to the end."""
    out: Dict[str, Tuple[str, float, float, str]] = {}
    for n, line in _lines(file):
        where = f"{file}:{n}"
        parts = line.split()
        if len(parts) != 4:
            raise FormatError(f"{where}: expected '<utt> <recording> <start> <end>', got {line!r}")
        utt, rec, a, b = parts
        _check_id(utt, "utterance id", where)
        try:
            start, end = float(a), float(b)
        except ValueError:
            raise FormatError(f"{where}: start and end must be seconds, got {a!r} {b!r}") from None
        if start < 0:
            raise FormatError(f"{where}: negative start {start}")
        if end != -1 and end <= start:
            raise FormatError(f"{where}: segment {utt} ends at {end} s, not after its start {start} s")
        if rec not in recordings:
            raise FormatError(f"{where}: recording {rec!r} of segment {utt} is not in {file.parent / 'wav.scp'}")
        if utt in out:
            raise FormatError(f"{where}: utterance {utt!r} repeats (first at {out[utt][3]})")
        out[utt] = (rec, start, end, where)
    if not out:
        raise FormatError(f"{file}: empty (no segments)")
    return out


def read_utt_table(file: Path, utts: Sequence[str], what: str) -> Dict[str, str]:
    """``utt2spk`` / ``utt2label``: one single-token value per utterance, the same ids."""
    out: Dict[str, Tuple[str, str]] = {}
    for n, line in _lines(file):
        where = f"{file}:{n}"
        parts = line.split()
        if len(parts) != 2:
            raise FormatError(f"{where}: expected '<utt> <{what}>' (one token, no spaces), got {line!r}")
        key, value = parts
        if key in out:
            raise FormatError(f"{where}: utterance {key!r} repeats (first at {out[key][1]})")
        if what == "speaker":
            _check_id(value, "speaker", where)
        out[key] = (value, where)
    known = set(utts)
    extra = [k for k in out if k not in known]
    if extra:
        raise FormatError(f"{out[extra[0]][1]}: utterance {extra[0]!r} is not in the dir's "
                          f"{'segments' if (file.parent / 'segments').is_file() else 'wav.scp'}"
                          f" ({len(extra)} such line(s))")
    missing = [u for u in utts if u not in out]
    if missing:
        raise FormatError(f"{file}: no {what} for {len(missing)} utterance(s), e.g. {missing[:3]}")
    return {k: v for k, (v, _) in out.items()}


# ---------------------------------------------------------------- the worker

def _signature(value: str, start: float, end: float, cwd: str) -> str:
    """Digest of what an output file is made from (input changes -> another file name)."""
    stat = ""
    if not value.endswith("|"):
        p = Path(value) if os.path.isabs(value) else Path(cwd) / value
        try:
            st = p.stat()
            stat = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            pass  # missing: the worker reports it
    text = f"{value}\0{start!r}\0{end!r}\0{stat}\0{SAMPLE_RATE}"
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]


def _run_pipe(job: RecordingJob, scratch: Path) -> Path:
    """Run the command of a pipe entry; its stdout, spooled to ``scratch``."""
    cmd = job.value[:-1].strip()
    try:
        proc = subprocess.run(cmd, shell=True, cwd=job.cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as e:
        raise FormatError(f"{job.where}: command {cmd!r} could not start ({e})") from None
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip()[-400:]
        raise FormatError(f"{job.where}: command {cmd!r} failed (exit {proc.returncode})" + (f": {err}" if err else ""))
    if not proc.stdout:
        raise FormatError(f"{job.where}: command {cmd!r} wrote no audio to stdout")
    scratch.parent.mkdir(parents=True, exist_ok=True)
    scratch.write_bytes(proc.stdout)
    return scratch


def format_recording(job: RecordingJob) -> List[PieceResult]:
    """Write every piece of ``job`` (reusing finished files); never raises for bad input:
    each piece's result carries the error naming the file and line."""
    results: Dict[str, PieceResult] = {}
    todo = []
    for p in job.pieces:
        out = Path(p.out)
        if out.is_file() and out.stat().st_size > 0:
            try:
                results[p.utt] = PieceResult(p.utt, duration=audio_info(out).duration, reused=True)
                continue
            except AudioFileError:
                pass  # a damaged output: made again
        todo.append(p)
    if not todo:
        return [results[p.utt] for p in job.pieces]
    scratch = Path(todo[0].out).parent / f".pipe-{job.rec}-{os.getpid()}.tmp"
    try:
        if job.is_pipe:
            src = _run_pipe(job, scratch)
            what = f"the output of {job.value[:-1].strip()!r}"
        else:
            src = Path(job.value) if os.path.isabs(job.value) else Path(job.cwd) / job.value
            what = str(src)
            if not src.exists() and any(c.isspace() for c in job.value):
                raise FormatError(f"{job.where}: no such file {job.value!r} (multi-column wav.scp, one file per "
                                  "channel, is not supported)")
        try:
            info = audio_info(src)
        except AudioFileError as e:
            raise FormatError(f"{job.where}: {what}: {e.reason}") from None
        for p in todo:
            results[p.utt] = _write_piece(job, p, src, what, info)
    except FormatError as e:
        for p in todo:
            results[p.utt] = PieceResult(p.utt, error=str(e))
    finally:
        scratch.unlink(missing_ok=True)
    return [results[p.utt] for p in job.pieces]


def _write_piece(job: RecordingJob, p: Piece, src: Path, what: str, info) -> PieceResult:
    sr, total = info.sample_rate, info.frames
    a = int(round(p.start * sr))
    if a >= total:
        return PieceResult(p.utt, error=f"{p.where}: segment {p.utt} starts at {p.start} s, after the end of "
                                        f"recording {job.rec} ({info.duration:.3f} s, {what})")
    b = total
    if p.end != -1:
        if p.end > info.duration + MAX_OVERSHOOT_S:
            return PieceResult(p.utt, error=f"{p.where}: segment {p.utt} ends at {p.end} s, past the end of "
                                            f"recording {job.rec} ({info.duration:.3f} s, {what})")
        b = min(total, int(round(p.end * sr)))
    try:
        data, sr = decode_audio(src, start=a, frames=b - a)
    except AudioFileError as e:
        return PieceResult(p.utt, error=f"{p.where}: {what}: {e.reason}")
    wave = resample(to_mono(data), sr, SAMPLE_RATE)
    seconds = wave.shape[0] / SAMPLE_RATE
    if seconds < job.min_s:
        return PieceResult(p.utt, dropped=f"{p.where}: {p.utt} is too short ({seconds:.3f} s < {job.min_s} s)")
    write_audio(p.out, wave, SAMPLE_RATE)
    return PieceResult(p.utt, duration=seconds)


# ---------------------------------------------------------------- one dir

MANIFEST = "format_manifest.json"
"""In an audio dir: ``outputs``, the files the last run listed (a later run removes those it no
longer lists, and never touches files it did not write), and ``too_short``, output names of
utterances found too short with the reason (a rerun does not decode them again)."""
_OUR_TEMP = re.compile(r"^\.(pipe-.+|.+\.flac\.\d+|format_manifest\.json\.\d+)\.tmp$")  # spools, partial writes


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


def _write_json(path: Path, data) -> None:
    atomic_write(path, json.dumps(data, indent=1, sort_keys=True) + "\n")


def _reuse(job: RecordingJob, known_short: Dict[str, str]) -> Optional[List[PieceResult]]:
    """The results of a recording whose pieces are all written (or known too short), else None."""
    out = []
    for p in job.pieces:
        name = Path(p.out).name
        if name in known_short:
            out.append(PieceResult(p.utt, dropped=known_short[name]))
            continue
        try:
            out.append(PieceResult(p.utt, duration=audio_info(p.out).duration, reused=True))
        except AudioFileError:
            return None
    return out


def plan_jobs(src: Path, audio_dir: Path, labelled: bool, cwd: Path, min_s: float = MIN_SECONDS):
    """Read and check ``src`` -> (jobs, utt2spk, utt2label, unused recordings). No audio is read."""
    if not src.is_dir():
        raise FormatError(f"{src}: no such data dir")
    recordings = read_wav_scp(src / "wav.scp")
    seg_file = src / "segments"
    if seg_file.is_file():
        segs = read_segments(seg_file, recordings)
    else:
        segs = {k: (k, 0.0, -1.0, where) for k, (_, where) in recordings.items()}
    utts = sorted(segs)
    spk = read_utt_table(src / "utt2spk", utts, "speaker") if (src / "utt2spk").is_file() \
        else {u: segs[u][0] for u in utts}
    labels: Dict[str, str] = {}
    if labelled:
        if not (src / "utt2label").is_file():
            raise FormatError(f"{src / 'utt2label'}: missing (a task split needs '<utt> <label>' per utterance)")
        labels = read_utt_table(src / "utt2label", utts, "label")
    by_rec: Dict[str, List[Piece]] = {}
    for u in utts:
        rec, start, end, where = segs[u]
        value = recordings[rec][0]
        out = audio_dir / f"{u}-{_signature(value, start, end, str(cwd))}.flac"
        by_rec.setdefault(rec, []).append(Piece(u, start, end, where, str(out)))
    jobs = [RecordingJob(rec, recordings[rec][0], recordings[rec][1], str(cwd), tuple(pieces), min_s)
            for rec, pieces in sorted(by_rec.items())]
    return jobs, spk, labels, len(recordings) - len(by_rec)


def format_dir(
    src: str | Path,
    dst: str | Path,
    audio_dir: str | Path,
    labelled: bool,
    *,
    nj: int = 1,
    min_s: float = MIN_SECONDS,
    skip_bad: bool = False,
    cwd: str | Path | None = None,
    progress: bool = True,
) -> FormatReport:
    """Format the data dir ``src`` into ``dst`` (audio under ``audio_dir``); see the module doc.

    Raises ``FormatError`` for bad input (naming file and line), with every bad utterance
    listed (the first few) unless ``skip_bad``, and when nothing usable is left.
    """
    from espnet2_sonar.data.build import _pool_map  # the corpus builder's process pool + progress bar

    src, dst = Path(src), Path(dst).absolute()
    audio_dir = Path(audio_dir).absolute()
    cwd = Path(cwd or os.getcwd()).absolute()
    if any(c.isspace() for c in str(audio_dir)):
        raise FormatError(f"{audio_dir}: the output path must not contain whitespace (Kaldi lists)")
    if src.absolute().resolve() == dst.resolve():
        raise FormatError(f"{src}: the input dir is the output dir; give a dir outside the recipe's data dir")
    jobs, spk, labels, unused = plan_jobs(src, audio_dir, labelled, cwd, min_s)
    audio_dir.mkdir(parents=True, exist_ok=True)
    rep = FormatReport(src, dst, unused_recordings=unused)
    if unused:
        log.info("%s: %d wav.scp entr(y/ies) have no segment and are not used", src, unused)
    # finished recordings are settled here (headers only); the rest go to the worker pool
    manifest = _read_json(audio_dir / MANIFEST)
    known_short = manifest.get("too_short", {})
    results, todo = [], []
    for job in jobs:
        done = _reuse(job, known_short)
        if done is None:
            todo.append(job)
        else:
            results.append(done)
    results += _pool_map(format_recording, todo, nj, f"formatting {src}", progress)
    pieces = {p.utt: p for j in jobs for p in j.pieces}
    for res in (r for rs in results for r in rs):
        if res.error:
            rep.bad.append(res.error)
        elif res.dropped:
            rep.dropped.append(res.dropped)
        else:
            p = pieces[res.utt]
            rep.utts.append(Utterance(res.utt, p.out, spk[res.utt], res.duration, labels.get(res.utt)))
            rep.reused += int(res.reused)
    if rep.bad and not skip_bad:
        more = f" (and {len(rep.bad) - 5} more)" if len(rep.bad) > 5 else ""
        raise FormatError("bad input in " + str(src) + ":\n  " + "\n  ".join(sorted(rep.bad)[:5]) + more
                          + "\n(fix it, or pass --skip_bad to drop such utterances with a warning)")
    for msg in sorted(rep.bad)[:20]:
        log.warning("skipping %s", msg)
    for msg in sorted(rep.dropped)[:20]:
        log.warning("dropping %s", msg)
    if len(rep.bad) + len(rep.dropped) > 20:
        log.warning("... %d skipped and %d dropped utterances in all", len(rep.bad), len(rep.dropped))
    if not rep.utts:
        raise FormatError(f"{src}: no usable utterance ({len(rep.bad)} bad, {len(rep.dropped)} too short)")
    write_kaldi_dir(dst, rep.utts, labelled=labelled)
    validate_kaldi_dir(dst, labelled=labelled)
    kept = sorted(Path(u.path).name for u in rep.utts)
    _write_json(audio_dir / MANIFEST, {"outputs": kept, "too_short": {
        Path(pieces[r.utt].out).name: r.dropped for rs in results for r in rs if r.dropped}})
    for name in set(manifest.get("outputs", [])) - set(kept):  # utterances (or their inputs) that are gone
        (audio_dir / name).unlink(missing_ok=True)
    for f in audio_dir.iterdir():  # temp files of an interrupted run
        if _OUR_TEMP.match(f.name):
            f.unlink(missing_ok=True)
    log.info("%s -> %s: %d utterances, %.1f min (%d dropped as too short%s)", src, dst, len(rep.utts),
             rep.minutes, len(rep.dropped), f", {len(rep.bad)} bad skipped" if rep.bad else "")
    return rep


# ---------------------------------------------------------------- recipe level

def parse_name_dirs(text: str, option: str) -> Dict[str, Path]:
    """``"music=/data/m 'birds=/my data/b'"`` (shell words) -> {name: Path}; errors name ``option``."""
    out: Dict[str, Path] = {}
    try:
        words = shlex.split(text or "")
    except ValueError as e:
        raise FormatError(f"{option}: {e} in {text!r}") from None
    for w in words:
        name, sep, path = w.partition("=")
        if not sep or not name or not path:
            raise FormatError(f"{option}: item {w!r} is not name=DIR")
        _check_id(name, "name", option)
        if name in out:
            raise FormatError(f"{option}: name {name!r} given twice")
        out[name] = Path(path)
    return out


SPLITS = ("train", "valid", "test")


def format_corpus(
    data_dir: str | Path,
    prior_dir: str | Path | None = None,
    domain_dirs: Dict[str, Path] | None = None,
    task_dirs: Dict[str, Path] | None = None,
    **kwargs,
) -> List[FormatReport]:
    """Format the given dirs into ``data_dir``: ``pools/prior``, ``pools/<domain>`` and
    ``tasks/<task>/{train,valid,test}`` (a task DIR holds train/ and test/, valid/ optional),
    audio under ``data_dir/audio_formatted/``. Every input is checked before any audio is
    converted, so a typo fails in seconds. ``kwargs`` go to ``format_dir``."""
    data_dir = Path(data_dir).absolute()
    domain_dirs, task_dirs = dict(domain_dirs or {}), dict(task_dirs or {})
    if "prior" in domain_dirs:
        raise FormatError("--domain_dirs: 'prior' is the prior pool; give it with --prior_dir")
    plan: List[Tuple[Path, str, bool]] = []  # (src, "pools/x" | "tasks/t/split", labelled)
    if prior_dir:
        plan.append((Path(prior_dir), "pools/prior", False))
    plan += [(Path(d), f"pools/{n}", False) for n, d in domain_dirs.items()]
    for task, d in task_dirs.items():
        d = Path(d)
        if not d.is_dir():
            raise FormatError(f"--task_dirs {task}={d}: no such dir (it holds train/, valid/ and test/)")
        for split in SPLITS:
            if (d / split).is_dir():
                plan.append((d / split, f"tasks/{task}/{split}", True))
            elif split == "valid":
                log.warning("%s: no valid/ split; probes hold out part of train/ instead", d)
                stale = data_dir / "tasks" / task / "valid"
                if stale.exists():  # from an earlier run with a valid split
                    shutil.rmtree(stale)
            else:
                raise FormatError(f"{d / split}: missing (a task dir holds train/ and test/, valid/ optional)")
    cwd = Path(kwargs.pop("cwd", None) or os.getcwd()).absolute()
    seen: Dict[str, str] = {}  # pool utterance id -> its dir: ids are unique across pools (replay, stage 9)
    for src, rel, labelled in plan:  # fail fast on malformed text files, before converting anything
        jobs = plan_jobs(src, data_dir / "audio_formatted" / rel, labelled, cwd)[0]
        if rel.startswith("pools/"):
            for utt in (p.utt for j in jobs for p in j.pieces):
                if utt in seen:
                    raise FormatError(f"utterance id {utt!r} is in both {seen[utt]} and {src}: ids must be unique "
                                      "across the pools (replay lists and stage 9 mix them)")
                seen[utt] = str(src)
    reps = [format_dir(src, data_dir / rel, data_dir / "audio_formatted" / rel, labelled, cwd=cwd, **kwargs)
            for src, rel, labelled in plan]
    for task in task_dirs:  # what the probes need: classes learnt from train
        splits = {r.dst.name: {u.label for u in r.utts} for r in reps if r.dst.parent.name == task
                  and r.dst.parent.parent.name == "tasks"}
        if len(splits["train"]) < 2:
            raise FormatError(f"{data_dir / 'tasks' / task / 'train'}: a probe needs at least 2 classes in train, "
                              f"found {sorted(splits['train'])}")
        for split in ("valid", "test"):
            unseen = sorted(splits.get(split, set()) - splits["train"])
            if unseen:
                raise FormatError(f"{task_dirs[task] / split}: label(s) {unseen} do not occur in its train split "
                                  "(the probe learns its classes from train)")
    return reps
