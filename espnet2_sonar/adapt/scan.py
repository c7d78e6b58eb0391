"""Audio folders -> 16 kHz mono FLAC segments + a Kaldi dir, resumably.

    from espnet2_sonar.adapt.scan import prepare_pool
    scan = prepare_pool("new", Path("my recordings"), Path("out/data"), nj=4)
    scan.dir      # out/data/new: wav.scp, utt2spk, spk2utt, utt2dur (16 kHz mono FLAC under out/data/audio/new)

What ``espnet2_sonar.bin.adapt`` feeds SONAR with: a user's folder of audio in whatever shape
it comes, turned into the corpus builder's format with the corpus builder's code
(``data.convert``: probe, ``plan_segments``, ``convert``; ``data.kaldi_dir``).

* Files: every file under the folder, recursively (symlinked folders followed once), whose
  extension, in any case, is in ``data.audio_files.AUDIO_EXTENSIONS`` (what libsndfile
  decodes: wav, flac, ogg/opus, mp3, aiff, ...; any rate, any channel count; the
  ``NEEDS_FFMPEG`` ones are found and reported as unreadable with a conversion hint). Names starting with ``.`` are
  skipped (hidden files, macOS ``._x.wav`` resource forks); so are the folders in
  ``exclude`` (the output dir when it lies inside the scanned folder).
* Ids: ``<pool>-<sanitised relative path>-<sha1(relative path)[:8]>``: whitespace-free,
  the same on every rerun and machine, and distinct even for names that sanitise alike
  ("a b.wav", "a_b.wav"). A recording cut into several segments gives ``<id>-000``, ...
* Conversion: each recording is probed (header only), cut into pieces of at most
  ``segment_s`` (its first ``max_recording_s`` only; a trailing piece under ``min_s`` is
  dropped) and written as 16 kHz mono 16-bit FLAC, each file atomically (temp name +
  rename). Existing outputs are reused, so a rerun converts only what is missing; a
  source whose size or mtime changed since (``manifest.json``) is converted again.
* Bad files: an unreadable, empty or corrupt file raises ``AudioFileError`` naming it and
  the problem (the message lists every such file), unless ``skip_bad`` (then a warning
  per file). Pieces that are readable but too short or silent are skipped with a warning
  either way: they are content, not broken files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple

from espnet2_sonar.data import audio_files
from espnet2_sonar.data import convert as conv
from espnet2_sonar.data.audio_files import AUDIO_EXTENSIONS, NEEDS_FFMPEG, find_audio
from espnet2_sonar.data.audio import AudioFileError
from espnet2_sonar.data.kaldi_dir import Utterance, write_kaldi_dir
from espnet2_sonar.utils.atomic_write import atomic_write

log = logging.getLogger(__name__)

# ``convert.convert``'s reasons for skipping a piece of a readable file (content, not damage)
CONTENT_SKIPS = ("too short", "silent", "zero-length audio after conversion")
MANIFEST = "manifest.json"


class NoAudioError(ValueError):
    """A folder without usable audio; the message names the folder."""


@dataclass(frozen=True)
class SourceFile:
    path: str  # absolute path of the original file
    rel: str  # POSIX path relative to the scanned folder
    rec_id: str


@dataclass
class PoolScan:
    """What ``prepare_pool`` found and wrote."""

    name: str
    root: Path
    dir: Path
    """The Kaldi dir (wav.scp, utt2spk, spk2utt, utt2dur)."""
    utts: List[Utterance]
    rec_of: dict
    """utterance id -> recording id (a recording's segments share it)."""
    num_files: int
    """Audio files found."""
    ignored: int
    """Other files (not audio by their extension) and hidden files."""
    bad: List[Tuple[str, str]] = field(default_factory=list)
    """(path, reason) of unreadable files that were skipped (``skip_bad``)."""
    dropped: List[Tuple[str, str]] = field(default_factory=list)
    """(path, reason) of readable pieces left out: too short, silent."""
    capped: List[Tuple[str, float]] = field(default_factory=list)
    """(path, duration s) of recordings longer than ``max_recording_s`` (only their start is used)."""
    reused: int = 0
    """Recordings whose converted audio was already there."""

    @property
    def minutes(self) -> float:
        return sum(u.duration for u in self.utts) / 60.0

    @property
    def num_recordings(self) -> int:
        return len(set(self.rec_of.values()))

    def summary(self) -> dict:
        return {
            "folder": str(self.root), "kaldi_dir": str(self.dir), "audio_files": self.num_files,
            "other_files_ignored": self.ignored, "recordings_used": self.num_recordings,
            "utterances": len(self.utts), "minutes": round(self.minutes, 3),
            "unreadable_skipped": [{"path": p, "reason": r} for p, r in self.bad],
            "pieces_dropped": [{"path": p, "reason": r} for p, r in self.dropped],
            "capped_recordings": [{"path": p, "seconds": round(d, 2)} for p, d in self.capped],
            "reused_conversions": self.reused,
        }


def recording_id(pool: str, rel: str) -> str:
    """Stable whitespace-free id of the file at ``rel`` (POSIX, relative to the pool folder)."""
    return audio_files.recording_id(pool, rel, stem_limit=64)


def _outputs(audio_dir: Path, rec_id: str, segs, duration: float) -> List[Path]:
    if len(segs) == 1 and segs[0][0] == 0 and abs(segs[0][1] - duration) < 1e-6:
        return [audio_dir / f"{rec_id}.flac"]
    return [audio_dir / f"{rec_id}-{round(a * 100):06d}-{round(b * 100):06d}.flac" for a, b in segs]


def _read_manifest(path: Path) -> dict:
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, json.JSONDecodeError):
        return {}


def _write_json(path: Path, data) -> None:
    atomic_write(path, json.dumps(data, indent=1, sort_keys=True))


def _hint(path: str) -> str:
    if Path(path).suffix.lower() in NEEDS_FFMPEG:
        return (f" [{Path(path).suffix} is not a format libsndfile reads: convert it first, "
                f"e.g. ffmpeg -i IN{Path(path).suffix} OUT.flac]")
    return ""


def _raise_bad(bad: List[Tuple[str, str]], hint: str) -> None:
    path, reason = bad[0]
    more = ""
    if len(bad) > 1:
        listed = "; ".join(f"{p}: {r}" for p, r in bad[1:6])
        more = f" (also unreadable: {listed}" + (f"; and {len(bad) - 6} more" if len(bad) > 6 else "") + ")"
    raise AudioFileError(path, f"{reason}{_hint(path)}{more}{hint}")


def _warn_each(what: str, items: List[Tuple[str, str]], limit: int = 20) -> None:
    for p, r in items[:limit]:
        log.warning("%s %s: %s%s", what, p, r, _hint(p))
    if len(items) > limit:
        log.warning("... and %d more (all listed in the report)", len(items) - limit)


def prepare_pool(
    name: str,
    root: str | Path,
    data_dir: str | Path,
    *,
    nj: int = 1,
    segment_s: float = 10.0,
    max_recording_s: float = 600.0,
    min_s: float = 0.25,
    skip_bad: bool = False,
    exclude: Iterable[str | Path] = (),
    progress: bool = True,
    bad_hint: str = "; pass --skip_bad_audio to skip unreadable files with a warning",
    write_dir: bool = True,
) -> PoolScan:
    """Convert the audio under ``root`` into ``data_dir/audio/<name>`` and write the Kaldi dir
    ``data_dir/<name>`` (see the module doc; ``write_dir=False``: leave that to ``write_pool``).
    Returns what was found and written.

    Raises:
        FileNotFoundError / NotADirectoryError: ``root`` is not a folder.
        NoAudioError: no audio file under ``root``, or none usable.
        AudioFileError: an unreadable file (unless ``skip_bad``); names the file(s).
    """
    from espnet2_sonar.data.build import _pool_map  # the corpus builder's process pool + progress bar

    root, data_dir = Path(root), Path(data_dir).absolute()
    if any(c.isspace() or c == "," for c in str(data_dir)):
        raise ValueError(f"{data_dir}: the output path must not contain whitespace or commas (Kaldi lists)")
    files, ignored = find_audio(root, exclude, progress)
    if not files:
        raise NoAudioError(
            f"{root}: no audio files found (searched recursively for {', '.join(sorted(AUDIO_EXTENSIONS))}; "
            f"{ignored} other file(s) ignored)")
    srcs = []
    for f in files:
        rel = f.relative_to(root).as_posix()
        srcs.append(SourceFile(str(f.absolute()), rel, recording_id(name, rel)))
    audio_dir = data_dir / "audio" / name
    audio_dir.mkdir(parents=True, exist_ok=True)
    for stale in audio_dir.glob(".*.tmp"):  # temp files of an interrupted conversion
        stale.unlink(missing_ok=True)
    manifest = _read_manifest(audio_dir / MANIFEST)
    stats = {}
    for s in srcs:
        st = os.stat(s.path)
        stats[s.rec_id] = {"src": s.path, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        old = manifest.get(s.rec_id)
        if old and (old.get("size"), old.get("mtime_ns")) != (st.st_size, st.st_mtime_ns):
            log.info("%s changed since it was converted: converting it again", s.path)
            for out in old.get("outs", []):
                Path(out).unlink(missing_ok=True)

    # 1. durations from the headers: unreadable files fail here, before any conversion
    probes = {p.rec_id: p for p in _pool_map(conv.probe, [(s.rec_id, s.path) for s in srcs], nj,
                                             f"probing {name}", progress)}
    bad = [(s.path, probes[s.rec_id].error) for s in srcs if probes[s.rec_id].error]
    if bad and not skip_bad:
        _raise_bad(bad, bad_hint)
    scan = PoolScan(name, root, data_dir / name, [], {}, len(files), ignored)
    jobs = []
    for s in srcs:
        p = probes[s.rec_id]
        if p.error:
            continue
        if p.duration > max_recording_s:
            scan.capped.append((s.path, p.duration))
        segs = conv.plan_segments(p.duration, max_recording_s, segment_s, min_s)
        outs = _outputs(audio_dir, s.rec_id, segs, p.duration)
        stats[s.rec_id]["outs"] = [str(o) for o in outs]
        pieces = tuple(conv.Segment(a, b, str(o)) for (a, b), o in zip(segs, outs))
        jobs.append(conv.ConvertJob(s.rec_id, s.path, pieces, min_s=min_s))
    if scan.capped:
        log.warning("%d recording(s) of %s are longer than %.0f s; only their first %.0f s are used, e.g. %s",
                    len(scan.capped), root, max_recording_s, max_recording_s, scan.capped[0][0])

    # 2. conversion (reuses finished outputs)
    results = _pool_map(conv.convert, jobs, nj, f"converting {name}", progress)
    by_id = {j.rec_id: j for j in jobs}
    late_bad = []
    for r in sorted(results, key=lambda r: r.rec_id):
        job = by_id[r.rec_id]
        scan.reused += int(r.reused)
        reasons = sorted({why for why in r.reasons if why})
        for why in reasons:
            if why.startswith(CONTENT_SKIPS):
                scan.dropped.append((job.src, why))
            else:  # decoding failed after a readable header
                late_bad.append((job.src, why))
        if any(why and not why.startswith(CONTENT_SKIPS) for why in r.reasons):
            continue
        whole = len(job.segments) == 1
        for k, (seg, dur) in enumerate(zip(job.segments, r.durations)):
            if dur is None:
                continue
            utt = r.rec_id if whole else f"{r.rec_id}-{k:03d}"
            scan.utts.append(Utterance(utt, seg.out, r.rec_id, dur))
            scan.rec_of[utt] = r.rec_id
    if late_bad and not skip_bad:
        _raise_bad(late_bad, bad_hint)
    scan.bad = bad + late_bad
    _warn_each("skipping unreadable", scan.bad)
    _warn_each("skipping a piece of", scan.dropped)
    _write_json(audio_dir / MANIFEST, {k: v for k, v in stats.items() if "outs" in v})
    if not scan.utts:
        raise NoAudioError(f"{root}: none of its {len(files)} audio file(s) is usable "
                           f"({len(scan.bad)} unreadable, {len(scan.dropped)} too short or silent pieces)")
    if write_dir:
        write_pool(scan)
    log.info("%s: %d audio files -> %d utterances (%.1f min) in %s (%d reused, %d unreadable skipped, "
             "%d pieces dropped, %d other files ignored)", root, len(files), len(scan.utts), scan.minutes,
             scan.dir, scan.reused, len(scan.bad), len(scan.dropped), ignored)
    return scan


def write_pool(scan: PoolScan) -> Path:
    """Write ``scan``'s Kaldi dir (atomically)."""
    return write_kaldi_dir(scan.dir, scan.utts, labelled=False)


def split_heldout(scan: PoolScan, share: float) -> Tuple[List[Utterance], List[Utterance]]:
    """(train, held-out) utterances of ``scan``, split by recording with the hash rule of
    ``make_train_lists`` (stable across reruns); every segment of a held-out recording is
    held out. At least one recording is held out and at least one kept.

    Raises NoAudioError when the pool has fewer than two recordings.
    """
    from espnet2_sonar.bin.make_train_lists import _in_valid

    recs = sorted(set(scan.rec_of.values()))
    if len(recs) < 2:
        raise NoAudioError(f"{scan.root}: only {len(recs)} usable recording(s); the prior pool needs at least 2 "
                           "(some to replay, some held out to measure drift)")
    held = {r for r in recs if _in_valid(r, share)}
    if not held:
        held = {min(recs, key=lambda r: hashlib.sha256(r.encode()).hexdigest())}
    if len(held) == len(recs):
        held.discard(max(recs, key=lambda r: hashlib.sha256(r.encode()).hexdigest()))
    train = [u for u in scan.utts if scan.rec_of[u.utt_id] not in held]
    heldout = [u for u in scan.utts if scan.rec_of[u.utt_id] in held]
    return train, heldout


def utterance_digest(utts: Sequence[Utterance]) -> Optional[str]:
    """A short fingerprint of a set of utterances (ids and durations)."""
    if not utts:
        return None
    text = "\n".join(f"{u.utt_id} {u.duration:.3f}" for u in sorted(utts, key=lambda u: u.utt_id))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
