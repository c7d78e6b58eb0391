"""The tiny real-audio corpus, built once per test session from the package cache.

Downloads under 250 MB into the shared cache (``$SONAR_CACHE`` or ~/.cache/espnet2_sonar)
the first time; later sessions reuse it.
"""

import hashlib
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from espnet2_sonar.data.build import build_corpus
from espnet2_sonar.data.corpus import SPLITS, SourceSpec, SubsetSpec, get_subset
from espnet2_sonar.data.kaldi_dir import read_kaldi_dir, validate_kaldi_dir
from espnet2_sonar.data.package_cache import default_cache_dir

TASKS = ("prior_sfx", "instrument", "animal", "foley")  # voice_gender needs 0ad-data (full subset only)
POOLS = ("prior", "music", "bio", "env", "speech")

needs_apt = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs Debian's dpkg-deb")


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        pytest.skip("the tiny corpus needs apt-get and dpkg-deb")
    out = tmp_path_factory.mktemp("tiny_corpus")
    return build_corpus(out, get_subset("tiny"), default_cache_dir(), nj=2, seed=0, progress=False)


def _dirs(report):
    out = report.out
    return {f"tasks/{t}/{s}": out / "tasks" / t / s for t in TASKS for s in SPLITS} | {
        f"pools/{p}": out / "pools" / p for p in POOLS}


def _rec(path: str) -> str:
    """Recording id from an audio file name: '<rec>.flac' or '<rec>-<start>-<end>.flac'."""
    stem = Path(path).stem
    parts = stem.rsplit("-", 2)
    return parts[0] if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit() else stem


@pytest.mark.timeout(600)
def test_every_dir_valid_and_non_empty(tiny):
    for name, d in _dirs(tiny).items():
        assert d.is_dir(), f"{name} was not written"
        utts = validate_kaldi_dir(d, labelled=name.startswith("tasks/"))  # reads every audio file
        assert utts, name
        for u in utts[:3]:
            x, sr = sf.read(u.path)
            assert sr == 16000 and x.ndim == 1 and np.abs(x).max() > 0


@pytest.mark.timeout(300)
def test_labels_and_classes(tiny):
    for t in TASKS:
        train = {u.label for u in read_kaldi_dir(tiny.out / "tasks" / t / "train")}
        assert len(train) >= 2, f"{t}: a probe needs at least two classes"
        for s in ("valid", "test"):
            assert {u.label for u in read_kaldi_dir(tiny.out / "tasks" / t / s)} <= train


@pytest.mark.timeout(300)
def test_no_recording_in_two_places(tiny):
    """A recording (by id and by audio content) is in at most one task split and at most one
    pool, and never in both a pool and a valid/test split."""
    places: dict = {}
    for name, d in _dirs(tiny).items():
        for u in read_kaldi_dir(d):
            digest = hashlib.sha1(sf.read(u.path, dtype="int16")[0].tobytes()).hexdigest()
            for key in (("rec", _rec(u.path)), ("pcm", digest)):
                places.setdefault(key, set()).add(name)
    for key, names in places.items():
        tasks = {n for n in names if n.startswith("tasks/")}
        pools = names - tasks
        assert len(tasks) <= 1 and len(pools) <= 1, (key, names)
        if pools:
            assert all(n.endswith("/train") for n in tasks), (key, names)


@pytest.mark.timeout(300)
def test_old_task_speakers_never_span_two_splits_and_train_feeds_the_prior_pool(tiny):
    spk = {s: {u.spk for u in read_kaldi_dir(tiny.out / "tasks/prior_sfx" / s)} for s in SPLITS}
    assert spk["train"] and spk["test"]
    assert not (spk["train"] & spk["test"]) and not (spk["train"] & spk["valid"]) and not (spk["valid"] & spk["test"])
    prior = {Path(u.path).name for u in read_kaldi_dir(tiny.out / "pools/prior")}
    held_out = {Path(u.path).name for s in ("valid", "test") for u in read_kaldi_dir(tiny.out / "tasks/prior_sfx" / s)}
    assert not (prior & held_out)


@pytest.mark.timeout(300)
def test_summary_matches_dirs(tiny):
    import json

    data = json.loads((tiny.out / "summary.json").read_text())
    md = (tiny.out / "summary.md").read_text()
    for s in data["sets"]:
        assert s["clips"] == len(read_kaldi_dir(tiny.out / s["name"]))
        assert f"| {s['name']} | {s['clips']} |" in md
    assert "Skipped source files" in md and data["packages_mb"] < 250  # wesnoth-1.16-data: 146 MB


@pytest.mark.timeout(300)
def test_rerun_reuses_everything(tiny):
    audio = sorted((tiny.out / "audio").rglob("*.flac"))
    mtimes = [p.stat().st_mtime_ns for p in audio]
    before = {n: (d / "wav.scp").read_text() for n, d in _dirs(tiny).items()}
    again = build_corpus(tiny.out, get_subset("tiny"), default_cache_dir(), nj=2, seed=0, progress=False)
    assert again.summary.download_mb == 0
    assert {n: (d / "wav.scp").read_text() for n, d in _dirs(again).items()} == before
    assert [p.stat().st_mtime_ns for p in audio] == mtimes  # converted audio was reused


@pytest.mark.timeout(60)
def test_cli_help():
    res = subprocess.run([sys.executable, "-m", "espnet2_sonar.bin.data_prep", "--help"],
                         capture_output=True, text=True)
    assert res.returncode == 0 and "--subset" in res.stdout and "tiny" in res.stdout


def _fake_deb(tmp_path: Path, name: str, files: dict) -> Path:
    root = tmp_path / "pkgroot"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: 0.0-test\nArchitecture: all\nMaintainer: t <t@example.org>\n"
        "Description: test package\n")
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    debs = tmp_path / "cache" / "debs"
    debs.mkdir(parents=True)
    deb = debs / f"{name}_0.0-test_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(root), str(deb)], check=True,
                   capture_output=True)
    return deb


def _ogg(tmp_path, seconds=0.5) -> bytes:
    p = tmp_path / "tone.ogg"
    t = np.arange(int(22050 * seconds)) / 22050
    sf.write(p, (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), 22050, format="OGG")
    return p.read_bytes()


@needs_apt
@pytest.mark.timeout(120)
def test_corrupt_and_empty_sources_are_reported(tmp_path, caplog):
    snd = "usr/share/games/minetest/games/minetest_game/mods/default/sounds/"
    good = _ogg(tmp_path)
    _fake_deb(tmp_path, "minetest-data", {
        snd + "default_dig_choppy.1.ogg": good,
        snd + "default_dig_choppy.2.ogg": b"OggS" + os.urandom(3000),  # corrupt
        snd + "default_dig_choppy.3.ogg": b"",  # empty
        snd + "default_grass_footstep.1.ogg": _ogg(tmp_path, 0.7),
    })
    spec = SubsetSpec(name="inject", sources=(SourceSpec("minetest-data"),), pool_minutes={"env": 1.0})
    with caplog.at_level(logging.WARNING):
        report = build_corpus(tmp_path / "out", spec, tmp_path / "cache", nj=1, progress=False)
    skipped = {Path(where.split(":")[-1]).name: why for where, why in report.skipped}
    assert "corrupt" in skipped["default_dig_choppy.2.ogg"]
    assert "empty" in skipped["default_dig_choppy.3.ogg"]
    for name, word in (("default_dig_choppy.2.ogg", "corrupt"), ("default_dig_choppy.3.ogg", "empty")):
        assert any(name in r.getMessage() and word in r.getMessage() for r in caplog.records), name
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "Skipped source files/segments: 2" in summary and "corrupt or undecodable audio: 1" in summary
    kept = [u.path for u in read_kaldi_dir(tmp_path / "out" / "tasks/foley/train")]
    assert len(kept) == 2 and not any("choppy.2" in p or "choppy.3" in p for p in kept)
