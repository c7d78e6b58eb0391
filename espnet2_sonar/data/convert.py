"""Worker functions (run in a process pool): probe durations, convert to 16 kHz mono FLAC.

Each job is a small picklable dataclass; each result says what was written or why a file
was skipped (the reason names the source path).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from espnet2_sonar.data.audio import (
    SAMPLE_RATE,
    AudioFileError,
    audio_info,
    decode_audio,
    is_silent,
    resample,
    to_mono,
    write_audio,
)
from espnet2_sonar.data.sf2 import Sf2Error, Sf2Zone, parse_sf2, render_sample


@dataclass(frozen=True)
class ProbeResult:
    rec_id: str
    duration: float  # seconds; 0 when unreadable
    error: str | None = None  # why the file is unusable (the path is the job's)


def probe(job: tuple[str, str]) -> ProbeResult:
    rec_id, path = job
    try:
        return ProbeResult(rec_id, audio_info(path).duration)
    except AudioFileError as e:
        return ProbeResult(rec_id, 0.0, e.reason)


@dataclass(frozen=True)
class Segment:
    start: float  # seconds in the source recording
    end: float
    out: str  # output file


@dataclass(frozen=True)
class ConvertJob:
    rec_id: str
    src: str
    segments: tuple[Segment, ...]
    sf2_sample: int = -1  # >= 0: render this SF2 sample instead of decoding a file
    sf2_zone: Sf2Zone | None = None
    render_s: float = 1.0
    min_s: float = 0.0  # shorter pieces are skipped (reported)


@dataclass(frozen=True)
class ConvertResult:
    rec_id: str
    durations: tuple[float | None, ...]  # per segment; None when skipped
    reasons: tuple[str | None, ...]  # per segment skip reason (source path: ConvertJob.src)
    reused: bool = False


def plan_segments(duration: float, max_len: float, segment_s: float, min_s: float) -> list[tuple[float, float]]:
    """[(start, end)] covering min(duration, max_len) in pieces of at most ``segment_s``;
    a trailing piece shorter than ``min_s`` is dropped (unless it is the only one)."""
    total = min(duration, max_len)
    if total <= 0:
        return []
    n = max(1, math.ceil(total / segment_s - 1e-9))
    segs = [(k * segment_s, min((k + 1) * segment_s, total)) for k in range(n)]
    if len(segs) > 1 and segs[-1][1] - segs[-1][0] < min_s:
        segs.pop()
    return segs


_SF2_CACHE: dict = {}


def _render(job: ConvertJob) -> tuple[np.ndarray, int]:
    sf = _SF2_CACHE.get(job.src)
    if sf is None:
        sf = _SF2_CACHE[job.src] = parse_sf2(job.src)
    return render_sample(sf, job.sf2_sample, job.sf2_zone, job.render_s)


def convert(job: ConvertJob) -> ConvertResult:
    """Write each segment of ``job`` as 16 kHz mono 16-bit FLAC (reusing existing files)."""
    outs = [Path(s.out) for s in job.segments]
    if outs and all(p.is_file() and p.stat().st_size > 0 for p in outs):
        try:
            durs = tuple(audio_info(p).duration for p in outs)
            return ConvertResult(job.rec_id, durs, (None,) * len(outs), reused=True)
        except AudioFileError:
            pass  # damaged output: redo
    try:
        if job.sf2_sample >= 0:
            data, sr = _render(job)
            wave = resample(data, sr, SAMPLE_RATE)
        else:
            first = min(s.start for s in job.segments)
            last = max(s.end for s in job.segments)
            info = audio_info(job.src)
            start = int(round(first * info.sample_rate))
            frames = int(round((last - first) * info.sample_rate))
            data, sr = decode_audio(job.src, start=start, frames=frames)
            wave = resample(to_mono(data), sr, SAMPLE_RATE)
            job = ConvertJob(job.rec_id, job.src, tuple(
                Segment(s.start - first, s.end - first, s.out) for s in job.segments))
    except (AudioFileError, Sf2Error) as e:
        reason = e.reason
        return ConvertResult(job.rec_id, (None,) * len(outs), (reason,) * len(outs))
    durs: list[float | None] = []
    reasons: list[str | None] = []
    for s in job.segments:
        a = int(round(s.start * SAMPLE_RATE))
        b = min(len(wave), int(round(s.end * SAMPLE_RATE)))
        piece = wave[a:b]
        if piece.size == 0:
            durs.append(None)
            reasons.append("zero-length audio after conversion")
        elif piece.size < job.min_s * SAMPLE_RATE:
            durs.append(None)
            reasons.append(f"too short ({piece.size / SAMPLE_RATE:.3f} s < {job.min_s} s)")
        elif is_silent(piece):
            durs.append(None)
            reasons.append(f"silent (peak below -60 dBFS; {s.start:.1f}-{s.end:.1f} s)")
        else:
            write_audio(s.out, piece, SAMPLE_RATE)
            durs.append(piece.size / SAMPLE_RATE)
            reasons.append(None)
    return ConvertResult(job.rec_id, tuple(durs), tuple(reasons))
