"""A plain folder of audio files -> the recipe's data contract (egs2/folder_audio stage 1).

    from espnet2_sonar.data.folder_corpus import build_folder_corpus
    corpus = build_folder_corpus("my_audio", "data", nj=2)
    corpus.domains, corpus.tasks    # ["birds", "city"], {"calls": ["alarm", "song"]}

Layout of the folder (ROOT)::

    prior/**                       the prior pool (the domain the base model learns; required)
    <domain>/**                    an unlabelled pool per new domain: every other top folder
    tasks/<task>/<label>/**        optional labelled probe tasks; the label is the subfolder

Files may be nested to any depth and named anything (spaces too); any format soundfile
reads, any rate and channel count (``data.audio_files.AUDIO_EXTENSIONS``; the ``NEEDS_FFMPEG``
ones, m4a/aac/..., are found and reported with a hint to convert them). Hidden files and folders are
skipped; other files are counted and ignored. Folder names of domains and tasks become ids
(letters, digits, ``_.+-``); label folders are sanitised (``dog bark`` -> ``dog_bark``).

Steps: scan; read every header (an unreadable file is an error naming it, unless
``skip_bad``); write *raw* Kaldi dirs under ``OUT/raw/`` (wav.scp with the source paths,
``segments`` cutting files longer than ``segment_s`` into pieces, only the first
``max_recording_s`` of a file, ``utt2spk`` = the file, ``utt2label``); then the format step of
your own data dirs (``format_dir``: 16 kHz mono FLAC, utt2dur, validation) writes
``OUT/pools/{prior,<domain>}`` and ``OUT/tasks/<task>/{train,valid,test}``. So this builder
and ``--prior_dir/--domain_dirs/--task_dirs`` of the recipe share one conversion path.

Task split: by file, with a stable hash of ``<task>/<relative path>`` (``shares``: train /
valid / test), so adding files never moves the others; then every label gets a training
file (the probe learns its classes from train), and valid and test get one file each when
the task has none there. Ids: ``<set>-<sanitised relative path>-<sha1[:8]>`` (whitespace
free, stable, distinct even for names that sanitise alike).

``build_example_folder`` makes a small real-audio example folder from a few small Debian
packages (the corpus builder's download cache), for the recipe's default run: nothing in the
recipe depends on where the folder came from.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Dict, List, Optional, Sequence, Tuple

from espnet2_sonar.data import audio_files
from espnet2_sonar.data.audio_files import AUDIO_EXTENSIONS, NEEDS_FFMPEG, find_audio, sanitize
from espnet2_sonar.data.format_dir import FormatError, FormatReport, format_dir
from espnet2_sonar.data.kaldi_dir import _ID
from espnet2_sonar.utils.atomic_write import atomic_write

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class FolderFile:
    path: str  # absolute path of the source file
    rel: str  # POSIX path relative to its set's folder (prior/, <domain>/, tasks/<task>/<label>/)
    rec_id: str
    label: Optional[str] = None


@dataclass
class FolderCorpus:
    """What ``build_folder_corpus`` found and wrote."""

    root: Path
    out: Path
    domains: List[str]
    tasks: Dict[str, List[str]]  # task -> labels
    reports: List[FormatReport] = field(default_factory=list)
    ignored: int = 0  # non-audio and hidden files
    bad: List[Tuple[str, str]] = field(default_factory=list)  # (path, reason) skipped (skip_bad)

    def summary(self) -> dict:
        return {"audio_root": str(self.root), "out": str(self.out), "domains": self.domains,
                "tasks": self.tasks, "other_files_ignored": self.ignored,
                "unreadable_skipped": [{"path": p, "reason": r} for p, r in self.bad],
                "sets": [r.summary() for r in self.reports]}


def recording_id(prefix: str, rel: str) -> str:
    """Stable whitespace-free id of the file at ``rel`` within the set ``prefix``."""
    return audio_files.recording_id(prefix, rel, stem_limit=56, prefix_limit=24)


def _name(folder: Path, what: str) -> str:
    if not _ID.match(folder.name):
        raise FormatError(f"{folder}: a {what} folder's name is an id in the recipe (letters, digits, _.+-, "
                          f"starting with a letter or digit): rename it")
    return folder.name


def scan_layout(root: Path) -> Tuple[Dict[str, List[FolderFile]], Dict[str, Dict[str, List[FolderFile]]], int]:
    """-> ({pool: files}, {task: {label: files}}, ignored files). Errors name the folder."""
    root = Path(root)
    if not root.is_dir():
        raise FormatError(f"{root}: no such folder (give the folder holding prior/, <domain>/ and tasks/)")
    if not (root / "prior").is_dir():
        raise FormatError(f"{root}: no prior/ folder (the prior pool: audio of the domain the base model "
                          "learns first)")
    pools: Dict[str, List[FolderFile]] = {}
    tasks: Dict[str, Dict[str, List[FolderFile]]] = {}
    ignored = 0
    tops = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    loose = [p for p in tops if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS]
    if loose:
        log.warning("%s: %d file(s) at the top level are ignored (put audio in prior/, <domain>/ or "
                    "tasks/<task>/<label>/), e.g. %s", root, len(loose), loose[0].name)
        ignored += len(loose)
    for top in (p for p in tops if p.is_dir() and p.name != "tasks"):
        name = _name(top, "domain")
        files, n = find_audio(top)
        ignored += n
        if not files:
            raise FormatError(f"{top}: no audio files (searched recursively for {', '.join(sorted(AUDIO_EXTENSIONS))})")
        pools[name] = [FolderFile(str(f.absolute()), f.relative_to(top).as_posix(),
                                  recording_id(name, f.relative_to(top).as_posix())) for f in files]
    if (root / "tasks").is_dir():
        for tdir in sorted(p for p in (root / "tasks").iterdir() if p.is_dir() and not p.name.startswith(".")):
            task = _name(tdir, "task")
            if task in pools:
                raise FormatError(f"{tdir}: a task named like a pool ({task}); rename one of them")
            labels: Dict[str, List[FolderFile]] = {}
            loose = [p for p in tdir.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS and not p.name.startswith(".")]
            if loose:
                log.warning("%s: %d file(s) not in a label subfolder are ignored, e.g. %s", tdir, len(loose),
                            loose[0].name)
                ignored += len(loose)
            for ldir in sorted(p for p in tdir.iterdir() if p.is_dir() and not p.name.startswith(".")):
                label = sanitize(ldir.name, 64)
                if label in labels:
                    raise FormatError(f"{ldir}: label folders {ldir.name!r} and another give the same label {label!r}")
                files, n = find_audio(ldir)
                ignored += n
                if not files:
                    log.warning("%s: no audio files; label %s is left out", ldir, label)
                    continue
                labels[label] = [FolderFile(str(f.absolute()), f"{ldir.name}/{f.relative_to(ldir).as_posix()}",
                                            recording_id(task, f"{ldir.name}/{f.relative_to(ldir).as_posix()}"),
                                            label) for f in files]
            if len(labels) < 2:
                raise FormatError(f"{tdir}: a task needs at least 2 label subfolders with audio, found "
                                  f"{sorted(labels) or 'none'}")
            tasks[task] = labels
    if len(pools) < 2:
        raise FormatError(f"{root}: no domain folder besides prior/ (each other top folder is a new domain "
                          "the model adapts to)")
    return pools, tasks, ignored


def _unit(key: str) -> float:
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "little") / 2.0 ** 64


def split_task(task: str, labels: Dict[str, List[FolderFile]], shares: Sequence[float] = (0.6, 0.2, 0.2)
               ) -> Dict[str, List[FolderFile]]:
    """{split: files} by a stable hash of each file (see the module doc)."""
    if len(shares) != 3 or min(shares) < 0 or sum(shares) <= 0:
        raise ValueError(f"shares must be three non-negative train/valid/test shares, got {shares}")
    total = float(sum(shares))
    cut = (shares[0] / total, (shares[0] + shares[1]) / total)
    u = {f.rec_id: _unit(f"{task}/{f.rel}") for fs in labels.values() for f in fs}
    split_of: Dict[str, str] = {}
    for fs in labels.values():
        for f in fs:
            split_of[f.rec_id] = "train" if u[f.rec_id] < cut[0] else "valid" if u[f.rec_id] < cut[1] else "test"
        if not any(split_of[f.rec_id] == "train" for f in fs):
            split_of[min(fs, key=lambda f: u[f.rec_id]).rec_id] = "train"
    for split in ("test", "valid"):  # a split with no file at all takes one from the largest label's train
        if any(s == split for s in split_of.values()):
            continue
        donors = [fs for fs in labels.values() if sum(split_of[f.rec_id] == "train" for f in fs) >= 2]
        if not donors:
            raise FormatError(f"task {task}: too few files to fill train, valid and test (give each label "
                              "a few files)")
        fs = max(donors, key=lambda fs: (sum(split_of[f.rec_id] == "train" for f in fs), fs[0].label))
        split_of[max((f for f in fs if split_of[f.rec_id] == "train"), key=lambda f: u[f.rec_id]).rec_id] = split
    out: Dict[str, List[FolderFile]] = {s: [] for s in SPLITS}
    for fs in labels.values():
        for f in fs:
            out[split_of[f.rec_id]].append(f)
    return out


def write_raw_dir(path: Path, files: Sequence[FolderFile], durations: Dict[str, float], segment_s: float,
                  max_recording_s: float, min_s: float) -> int:
    """The Kaldi dir the format step reads: wav.scp (source paths), segments, utt2spk
    [, utt2label]. Returns the number of utterances."""
    from espnet2_sonar.data.convert import plan_segments

    path.mkdir(parents=True, exist_ok=True)
    wav, segs, spk, lab = [], [], [], []
    for f in sorted(files, key=lambda f: f.rec_id):
        if f.rec_id not in durations:
            continue  # unreadable, skipped
        dur = durations[f.rec_id]
        pieces = plan_segments(dur, max_recording_s, segment_s, min_s)
        if len(pieces) == 1 and dur <= max_recording_s:
            pieces = [(0.0, -1.0)]  # the whole file (robust to a header length a little off)
        wav.append(f"{f.rec_id} {f.path}\n")
        for k, (a, b) in enumerate(pieces):
            utt = f.rec_id if len(pieces) == 1 else f"{f.rec_id}-{k:03d}"
            segs.append(f"{utt} {f.rec_id} {a:.3f} {b:.3f}\n" if b != -1 else f"{utt} {f.rec_id} {a:.3f} -1\n")
            spk.append(f"{utt} {f.rec_id}\n")
            if f.label:
                lab.append(f"{utt} {f.label}\n")
    for name, rows in (("wav.scp", wav), ("segments", segs), ("utt2spk", spk), ("utt2label", lab)):
        if rows:
            (path / name).write_text("".join(sorted(rows)), encoding="utf-8")
        else:
            (path / name).unlink(missing_ok=True)
    return len(segs)


def build_folder_corpus(
    root: str | Path,
    out: str | Path,
    *,
    nj: int = 1,
    segment_s: float = 10.0,
    max_recording_s: float = 600.0,
    min_s: float = 0.25,
    shares: Sequence[float] = (0.6, 0.2, 0.2),
    skip_bad: bool = False,
    progress: bool = True,
) -> FolderCorpus:
    """Build the data contract under ``out`` from the folder ``root`` (see the module doc)."""
    from espnet2_sonar.data import convert as conv
    from espnet2_sonar.data.build import _pool_map  # the corpus builder's process pool + progress bar

    root, out = Path(root).absolute(), Path(out).absolute()
    pools, tasks, ignored = scan_layout(root)
    corpus = FolderCorpus(root, out, [p for p in pools if p != "prior"],
                          {t: sorted(ls) for t, ls in tasks.items()}, ignored=ignored)
    every = [f for fs in pools.values() for f in fs] + [f for ls in tasks.values() for fs in ls.values() for f in fs]
    ffmpeg = [f for f in every if Path(f.path).suffix.lower() in NEEDS_FFMPEG]
    probes = _pool_map(conv.probe, [(f.rec_id, f.path) for f in every if f not in ffmpeg], nj,
                       "reading headers", progress)
    durations = {p.rec_id: p.duration for p in probes if not p.error}
    by_id = {f.rec_id: f for f in every}
    bad = [(by_id[p.rec_id].path, p.error) for p in probes if p.error]
    bad += [(f.path, f"{Path(f.path).suffix} is not a format libsndfile reads: convert it first "
                     f"(e.g. ffmpeg -i IN{Path(f.path).suffix} OUT.flac)") for f in ffmpeg]
    if bad and not skip_bad:
        listed = "\n  ".join(f"{p}: {r}" for p, r in sorted(bad)[:10])
        more = f"\n  ... and {len(bad) - 10} more" if len(bad) > 10 else ""
        raise FormatError(f"unreadable audio under {root}:\n  {listed}{more}\n(fix or remove these files, or pass "
                          "--skip_bad to leave them out with a warning)")
    for p, r in sorted(bad)[:20]:
        log.warning("skipping unreadable %s: %s", p, r)
    corpus.bad = sorted(bad)
    plan: List[Tuple[str, List[FolderFile], bool]] = [(f"pools/{n}", fs, False) for n, fs in pools.items()]
    for task, labels in tasks.items():
        for split, fs in split_task(task, labels, shares).items():
            plan.append((f"tasks/{task}/{split}", fs, True))
    for rel, fs, labelled in plan:
        raw = out / "raw" / rel
        if write_raw_dir(raw, fs, durations, segment_s, max_recording_s, min_s) == 0:
            raise FormatError(f"{root}: no readable audio for {rel}")
        corpus.reports.append(format_dir(raw, out / rel, out / "audio_formatted" / rel, labelled, nj=nj,
                                         min_s=min_s, progress=progress))
    atomic_write(out / "folder_corpus.json", json.dumps(corpus.summary(), indent=1) + "\n")
    return corpus


# ---------------------------------------------------------------- the example folder

EXAMPLE_PACKAGES = ("wesnoth-1.16-data", "tuxpaint-data", "asterisk-core-sounds-en-gsm", "minetest-data")
EXAMPLE_DOMAINS = ("speech", "env")
EXAMPLE_TASK_DOMAIN = {"cries": "prior", "minetest_foley": "env"}
EXAMPLE_VERSION = 1
_CRY = re.compile(r"^[a-z]+(?:-[a-z]+)*-(die|hit)(?:-\d+)?\.(?:ogg|wav)$")
_FOLEY = (("footstep", "_footstep"), ("glass", "break_glass"), ("place", "place_node"), ("dug", "_dug"),
          ("dig", "_dig"), ("door", "door"))


def example_destination(package: str, member: str) -> Optional[str]:
    """Where a package's audio file goes in the example folder (None: not used).

    prior/: wesnoth unit, weapon, spell and UI sounds and ambiences, tuxpaint UI sounds;
    speech/ (a new domain): asterisk English prompts (8 kHz GSM); env/ (a new domain):
    minetest water, lava, fire, machines; tasks/cries/{die,hit}/: wesnoth creature cries
    (an old task: the prior pool's domain); tasks/minetest_foley/<label>/: minetest
    footsteps, digging, placing, doors, breaking glass (a new task of env)."""
    name = PurePosixPath(member).name
    if package == "wesnoth-1.16-data" and "/sounds/" in member:
        m = _CRY.match(name)
        if m:
            return f"tasks/cries/{m.group(1)}/{name}"
        return "prior/wesnoth sounds/" + member.split("/sounds/", 1)[1]
    if package == "tuxpaint-data":
        return f"prior/tuxpaint ui/{name}"
    if package == "asterisk-core-sounds-en-gsm" and "/sounds/" in member:
        return "speech/asterisk prompts/" + member.split("/sounds/", 1)[1].split("/", 1)[-1]
    if package == "minetest-data":
        for label, key in _FOLEY:
            if key in name:
                return f"tasks/minetest_foley/{label}/{name}"
        return f"env/minetest/{name}"
    return None


def build_example_folder(dest: str | Path, cache: str | Path | None = None, nj: int = 2, per_folder: int = 120,
                         progress: bool = True) -> Path:
    """Fill ``dest`` with the example folder (``example_destination``), at most ``per_folder``
    files per source folder of a pool and per task label (chosen by a stable hash). Packages come from the
    corpus builder's cache (downloaded with ``apt-get download`` when missing). Reused when
    complete (``EXAMPLE.json``); built under a temporary name and renamed."""
    from espnet2_sonar.data.build import fetch_sources
    from espnet2_sonar.data.corpus import SourceSpec
    from espnet2_sonar.data.package_cache import default_cache_dir

    dest = Path(dest).absolute()
    stamp = {"version": EXAMPLE_VERSION, "packages": list(EXAMPLE_PACKAGES), "per_folder": per_folder}
    marker = dest / "EXAMPLE.json"
    if marker.is_file():
        try:
            if {k: v for k, v in json.loads(marker.read_text()).items() if k in stamp} == stamp:
                return dest
        except (OSError, json.JSONDecodeError):
            pass
    cache = Path(cache).expanduser() if cache else default_cache_dir()
    pkgs = fetch_sources([SourceSpec(p) for p in EXAMPLE_PACKAGES], cache, nj, progress)
    groups: Dict[str, List[Tuple[str, Path]]] = defaultdict(list)
    for pkg in pkgs:
        for f in pkg.files:
            to = example_destination(pkg.name, f.member)
            if to is not None:
                # a cap per source folder of a pool and per task label
                groups["/".join(to.split("/")[:3 if to.startswith("tasks/") else 2])].append((to, pkg.path(f)))
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    files = 0
    for _, items in sorted(groups.items()):
        items = sorted(items, key=lambda it: hashlib.sha1(it[0].encode()).hexdigest())[:per_folder]
        for to, src in items:
            (tmp / to).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, tmp / to)
            files += 1
    stamp.update(files=files, domains=list(EXAMPLE_DOMAINS), task_domain=EXAMPLE_TASK_DOMAIN,
                 note="audio files copied from the Debian packages listed (their own licences apply); "
                      "built by espnet2_sonar.data.folder_corpus.build_example_folder")
    (tmp / "EXAMPLE.json").write_text(json.dumps(stamp, indent=1) + "\n")
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)
    log.info("example folder: %d files from %s in %s", files, ", ".join(EXAMPLE_PACKAGES), dest)
    return dest
