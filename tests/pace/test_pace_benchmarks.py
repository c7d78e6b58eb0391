"""Class-incremental benchmarks from labelled task dirs."""

from pathlib import Path

import pytest

from espnet2_sonar.pace.benchmarks import BenchmarkConfig, build_benchmark, session_offsets


def _write_task(root: Path, task: str, counts: dict) -> None:
    """counts: {split: {label: n}}; wav files are empty placeholders (never read here)."""
    for split, per_label in counts.items():
        d = root / "tasks" / task / split
        d.mkdir(parents=True)
        scp, lab = [], []
        for label, n in per_label.items():
            for i in range(n):
                utt = f"{task}-{split}-{label}-{i}"
                (d / f"{utt}.wav").write_bytes(b"")
                scp.append(f"{utt} {d / utt}.wav\n")
                lab.append(f"{utt} {label}\n")
        (d / "wav.scp").write_text("".join(scp))
        (d / "utt2label").write_text("".join(lab))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("pace_bench")
    # both tasks share the label "drum": prefixing keeps them apart
    _write_task(root, "foley", {"train": {"saw": 4, "drum": 3, "rain": 5, "one": 1},
                                "test": {"saw": 2, "drum": 2, "rain": 1, "one": 2}})
    _write_task(root, "instrument", {"train": {"drum": 4, "piano": 4, "organ": 3, "bass": 2},
                                     "test": {"drum": 1, "piano": 2, "organ": 2}})
    return root


@pytest.mark.timeout(30)
def test_sessions_partition_prefixed_classes(data):
    b = build_benchmark("coarse", data, seed=0, config=BenchmarkConfig(num_sessions=3, train_splits=("train",)))
    assert sorted(b.class_names) == sorted(
        ["foley/saw", "foley/drum", "foley/rain", "instrument/drum", "instrument/piano", "instrument/organ"]
    )
    assert b.dropped == {
        "foley/one": "1 training item(s) < min_train_per_class=2",
        "instrument/bass": "0 test item(s) < min_test_per_class=1",
    }
    assert b.offsets == [0, 2, 4, 6]
    seen = []
    for t in range(b.num_sessions):
        classes = b.session_classes(t)
        idx = b.train.select(classes)
        assert set(b.train.labels[idx].tolist()) == set(classes)
        seen += list(classes)
    assert seen == list(range(6))
    assert len(b.train) == 4 + 3 + 5 + 4 + 4 + 3 and len(b.test) == 2 + 2 + 1 + 1 + 2 + 2
    # labels match the utterances' own classes
    for utt, y in zip(b.train.utt_ids, b.train.labels.tolist()):
        task, rest = utt.split("/", 1)
        assert b.class_names[y] == f"{task}/{rest.split('-')[2]}"


@pytest.mark.timeout(30)
def test_class_order_fixed_by_seed(data):
    config = BenchmarkConfig(train_splits=("train",))
    orders = {s: build_benchmark("coarse", data, seed=s, config=config).class_names for s in range(4)}
    assert build_benchmark("coarse", data, seed=1, config=config).class_names == orders[1]
    assert len({tuple(o) for o in orders.values()}) > 1


@pytest.mark.timeout(30)
def test_subsample_valid_split_and_errors(data, tmp_path):
    config = BenchmarkConfig(num_sessions=2, max_train_per_class=2, train_splits=("train",))
    b = build_benchmark("coarse", data, seed=0, config=config)
    assert len(b.train) == 2 * b.num_classes
    assert b.describe()["sessions"][0]["n_train"] == 2 * len(b.session_classes(0))
    with pytest.raises(ValueError, match="usable classes"):
        build_benchmark("coarse", data, config=BenchmarkConfig(num_sessions=7, train_splits=("train",)))
    with pytest.raises(FileNotFoundError, match="animal"):
        build_benchmark("fine", data, config=config)
    with pytest.raises(ValueError, match="unknown benchmark"):
        build_benchmark("nope", data)
    with pytest.raises(FileNotFoundError, match="valid"):
        build_benchmark("coarse", data)  # the default trains on train + valid


@pytest.mark.timeout(30)
def test_session_offsets():
    assert session_offsets(10, 3) == [0, 4, 7, 10]
    assert session_offsets(4, 4) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError):
        session_offsets(3, 4)
