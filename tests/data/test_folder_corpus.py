"""The folder builder of egs2/folder_audio (``data/folder_corpus.py``): valid Kaldi dirs from a
folder of mixed formats, errors, a stable split, and the example folder's layout rules."""

import json

import pytest

from espnet2_sonar.data.folder_corpus import build_folder_corpus, example_destination, scan_layout, split_task
from espnet2_sonar.data.format_dir import FormatError
from espnet2_sonar.data.kaldi_dir import read_kaldi_dir, validate_kaldi_dir

from audio_fixtures import audio_folder, write_tone


@pytest.mark.timeout(120)
def test_folder_corpus_builds_valid_kaldi_dirs(tmp_path):
    root = audio_folder(tmp_path / "my audio", long_s=23.0)
    corpus = build_folder_corpus(root, tmp_path / "data", nj=1, progress=False)
    data = tmp_path / "data"
    assert corpus.domains == ["birds", "city"]
    assert corpus.tasks == {"calls": ["alarm_call", "song"], "engines": ["car", "truck"]}
    assert corpus.ignored == 2  # notes.txt and the hidden file
    for pool in ("prior", "birds", "city"):
        utts = validate_kaldi_dir(data / "pools" / pool, labelled=False)
        assert all(" " not in u.utt_id and u.path.endswith(".flac") for u in utts)
    assert len(read_kaldi_dir(data / "pools" / "prior")) == 6
    city = read_kaldi_dir(data / "pools" / "city")
    long_pieces = sorted(u.duration for u in city if "long_recording" in u.utt_id)
    assert long_pieces == pytest.approx([3.0, 10.0, 10.0], abs=2e-3)  # cut into <= 10 s pieces
    assert len({u.spk for u in city if "long_recording" in u.utt_id}) == 1  # one recording, one speaker
    for task in ("calls", "engines"):
        splits = {s: validate_kaldi_dir(data / "tasks" / task / s, labelled=True) for s in ("train", "valid", "test")}
        train_labels = {u.label for u in splits["train"]}
        assert len(train_labels) == 2
        assert all(u.label in train_labels for s in ("valid", "test") for u in splits[s])
        ids = [u.utt_id for us in splits.values() for u in us]
        assert len(ids) == 8 == len(set(ids))
    summary = json.loads((data / "folder_corpus.json").read_text())
    assert summary["domains"] == ["birds", "city"] and len(summary["sets"]) == 9
    # a rerun reuses every file
    again = build_folder_corpus(root, data, progress=False)
    assert all(r.reused == len(r.utts) for r in again.reports)


@pytest.mark.timeout(60)
def test_folder_corpus_errors_and_stable_split(tmp_path):
    root = audio_folder(tmp_path / "f", per_label=6)
    (root / "birds" / "broken.wav").write_bytes(b"RIFF....garbage")
    with pytest.raises(FormatError) as e:
        build_folder_corpus(root, tmp_path / "data", progress=False)
    assert str(root / "birds" / "broken.wav") in str(e.value)
    corpus = build_folder_corpus(root, tmp_path / "data", skip_bad=True, progress=False)
    assert [p for p, _ in corpus.bad] == [str(root / "birds" / "broken.wav")]
    with pytest.raises(FormatError, match="no prior/ folder"):
        scan_layout(tmp_path / "f" / "birds")
    (root / "tasks" / "calls" / "song").rename(root / "tasks" / "calls" / ".song")
    with pytest.raises(FormatError, match="at least 2 label"):
        scan_layout(root)
    (root / "tasks" / "calls" / ".song").rename(root / "tasks" / "calls" / "song")
    # the split is stable: a new file leaves every other file where it was
    pools, tasks, _ = scan_layout(root)
    before = {f.rec_id: s for s, fs in split_task("calls", tasks["calls"]).items() for f in fs}
    write_tone(root / "tasks" / "calls" / "song" / "new one.wav", 0.7, 16000)
    pools, tasks, _ = scan_layout(root)
    after = {f.rec_id: s for s, fs in split_task("calls", tasks["calls"]).items() for f in fs}
    assert {k: after[k] for k in before} == before and len(after) == len(before) + 1


def test_example_folder_layout_rules():
    wesnoth = "usr/share/games/wesnoth/1.16/data/core/sounds/"
    assert example_destination("wesnoth-1.16-data", wesnoth + "wolf-die-2.ogg") == "tasks/cries/die/wolf-die-2.ogg"
    assert example_destination("wesnoth-1.16-data", wesnoth + "ambient/night.ogg") \
        == "prior/wesnoth sounds/ambient/night.ogg"
    prompt = "usr/share/asterisk/sounds/en_US_f_Allison/digits/1.gsm"
    assert example_destination("asterisk-core-sounds-en-gsm", prompt) == "speech/asterisk prompts/digits/1.gsm"
    assert example_destination("minetest-data", "x/sounds/default_dug_metal.2.ogg") \
        == "tasks/minetest_foley/dug/default_dug_metal.2.ogg"
    assert example_destination("minetest-data", "x/sounds/fire_large.ogg") == "env/minetest/fire_large.ogg"
