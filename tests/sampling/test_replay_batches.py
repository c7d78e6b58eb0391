"""Replay share per batch (sampling/replay_batches.py) under every ESPnet batch type.

The list is length-skewed like a real stage (short prior clips, long music clips), where
ESPnet's length-grouping samplers produce near-pure batches; the wrapper must restore the
replay share in every batch without losing, repeating or reordering items within a source.
"""

import logging
from pathlib import Path

import pytest
from espnet2.samplers.build_batch_sampler import build_batch_sampler

from espnet2_sonar.sampling.mixing import _interleave
from espnet2_sonar.sampling.replay_batches import (
    ReplayFlagsError,
    ReplayMixBatchSampler,
    mix_batches,
    read_is_replay,
    replay_counts,
)

pytestmark = pytest.mark.timeout(60)

SR = 16000
N_REPLAY, N_NEW = 40, 80
SHARE = N_REPLAY / (N_REPLAY + N_NEW)

# (batch_type, build_batch_sampler kwargs): sizes ~8, bins ~ 8 long clips
BATCH_TYPES = {
    "sorted": dict(batch_size=8),
    "unsorted": dict(batch_size=8),
    "numel": dict(batch_bins=8 * 10 * SR),
    "length": dict(batch_bins=8 * 10 * SR),
    "folded": dict(batch_size=16, fold_lengths=[5 * SR]),
}


def _write_list(root: Path, n_replay=N_REPLAY, n_new=N_NEW, replay_flag="1") -> Path:
    """speech_shape + is_replay of an evenly interleaved list (as make_train_lists writes it):
    replay clips 1.6-2.4 s, new clips 8-12 s."""
    root.mkdir(parents=True, exist_ok=True)
    shapes, flags = [], []
    i_new = i_rep = 0
    for which in _interleave(n_new, n_replay):
        if which:
            key, samples, flag = f"old{i_rep:03d}", int(SR * (1.6 + 0.8 * ((i_rep * 7) % 11) / 10)), replay_flag
            i_rep += 1
        else:
            key, samples, flag = f"new{i_new:03d}", int(SR * (8.0 + 4.0 * ((i_new * 5) % 13) / 12)), "0"
            i_new += 1
        shapes.append(f"{key} {samples}\n")
        flags.append(f"{key} {flag}\n")
    (root / "speech_shape").write_text("".join(shapes))
    (root / "is_replay").write_text("".join(flags))
    return root


def _inner(root: Path, batch_type: str, **overrides):
    kwargs = dict(batch_size=8, batch_bins=1, fold_lengths=())
    kwargs.update(BATCH_TYPES[batch_type], **overrides)
    return build_batch_sampler(type=batch_type, shape_files=[str(root / "speech_shape")], **kwargs)


def _replay_count(batch, flags):
    return sum(flags[k] for k in batch)


@pytest.fixture
def skewed(tmp_path):
    return _write_list(tmp_path / "list")


def test_unwrapped_sorted_batches_are_near_pure(skewed):
    """The problem being fixed: on this list ESPnet's sorted batches are all-replay or all-new."""
    flags = read_is_replay(skewed / "is_replay")
    batches = list(_inner(skewed, "sorted"))
    shares = [_replay_count(b, flags) / len(b) for b in batches]
    assert min(shares) == 0.0 and max(shares) == 1.0
    off = [b for b in batches if abs(_replay_count(b, flags) - len(b) * SHARE) >= 1]
    assert len(off) >= len(batches) - 1  # the property below fails on nearly every batch


@pytest.mark.parametrize("batch_type", list(BATCH_TYPES))
def test_every_batch_holds_the_replay_share(skewed, batch_type):
    flags = read_is_replay(skewed / "is_replay")
    inner = list(_inner(skewed, batch_type))
    sampler = ReplayMixBatchSampler(_inner(skewed, batch_type), skewed / "is_replay")
    batches = list(sampler)
    assert len(sampler) == len(inner) and [len(b) for b in batches] == [len(b) for b in inner]
    assert sampler.share == pytest.approx(SHARE)
    for b in batches:
        assert abs(_replay_count(b, flags) - len(b) * SHARE) < 1, (batch_type, b)
    # every item exactly once
    keys = [k for b in batches for k in b]
    assert len(keys) == len(set(keys)) == N_REPLAY + N_NEW
    assert set(keys) == {k for b in inner for k in b}
    # each source keeps the order the inner sampler visits it in (length grouping survives)
    for value in (True, False):
        stream = [k for b in inner for k in b if flags[k] == value]
        assert [k for b in batches for k in b if flags[k] == value] == stream
    # deterministic
    assert list(ReplayMixBatchSampler(_inner(skewed, batch_type), skewed / "is_replay")) == batches


@pytest.mark.parametrize("world_size", [2, 3])
def test_each_rank_slice_keeps_the_mix(skewed, world_size):
    """ESPnet gives rank r the slice batch[r::world_size]; each slice keeps the share too."""
    flags = read_is_replay(skewed / "is_replay")
    inner = _inner(skewed, "sorted", batch_size=12)
    sampler = ReplayMixBatchSampler(inner, skewed / "is_replay", world_size=world_size)
    for b in sampler:
        assert abs(_replay_count(b, flags) - len(b) * SHARE) < 1
        for rank in range(world_size):
            part = b[rank::world_size]
            # batch-level rounding (< 1 item) spread over the slices, plus the slice's own (< 1)
            assert abs(_replay_count(part, flags) - len(part) * SHARE) < 1 + len(part) / len(b)
    assert sorted(k for b in sampler for k in b) == sorted(flags)


def test_replay_counts_are_exact_and_within_one():
    sizes = [7, 8, 8, 3, 20, 1, 9]
    for replay in range(sum(sizes) + 1):
        counts = replay_counts(sizes, replay)
        assert sum(counts) == replay
        share = replay / sum(sizes)
        assert all(0 <= c <= s and abs(c - s * share) < 1 for c, s in zip(counts, sizes))


@pytest.mark.parametrize("flag", ["0", "1"])
def test_lists_with_one_source_pass_through(tmp_path, flag):
    root = _write_list(tmp_path / "list", replay_flag=flag, n_replay=10)
    if flag == "1":  # all replay: flag the new items too
        text = (root / "is_replay").read_text().replace(" 0\n", " 1\n")
        (root / "is_replay").write_text(text)
    for batch_type in BATCH_TYPES:
        inner = [tuple(b) for b in _inner(root, batch_type)]
        assert list(ReplayMixBatchSampler(_inner(root, batch_type), root / "is_replay")) == inner


@pytest.mark.parametrize(
    "content, match",
    [
        ("old000 1\nnew000 2\n", r"is_replay:2: expected"),
        ("old000 1\nnew000\n", r"is_replay:2: expected"),
        ("old000 yes\n", r"is_replay:1: expected"),
        ("old000 1\nold000 0\n", r"is_replay:2: .*listed twice"),
        ("old000 1\nnew000 0\n", r"is_replay: no entry for \d+ of the 120 batched"),
    ],
)
def test_bad_is_replay_file_names_the_file(skewed, content, match):
    (skewed / "is_replay").write_text(content)
    with pytest.raises(ReplayFlagsError, match=match) as err:
        ReplayMixBatchSampler(_inner(skewed, "sorted"), skewed / "is_replay")
    assert str(skewed / "is_replay") in str(err.value)


def test_missing_is_replay_file_names_the_file(tmp_path):
    with pytest.raises(ReplayFlagsError, match="nothing/is_replay"):
        read_is_replay(tmp_path / "nothing" / "is_replay")


def test_mix_batches_ignores_extra_flags():
    batches = [("a", "b"), ("c", "d")]
    flags = {"a": True, "b": True, "c": False, "d": False, "zzz": True}
    mixed = mix_batches(batches, flags)
    assert [sum(flags[k] for k in b) for b in mixed] == [1, 1]


# ---------------------------------------------------------------- SonarTask integration


@pytest.fixture(scope="module")
def tiny_lists(tmp_path_factory):
    """make_train_lists output for 8 short replay wavs (0.25-0.3 s) and 16 long new wavs (1-1.2 s)."""
    from sonar_fixtures import write_wav_dir

    from espnet2_sonar.bin.make_train_lists import main as make_lists

    root = tmp_path_factory.mktemp("replay_lists")
    prior = write_wav_dir(root / "prior", "old", 8, seed=1, seconds=(0.25, 0.3))
    new = write_wav_dir(root / "new", "new", 16, seed=2, seconds=(1.0, 1.2))
    assert make_lists(["--pool_dir", str(new), "--out_dir", str(root / "lists"),
                       "--replay_scp", str(prior / "wav.scp"), "--valid_share", "0.1"]) == 0
    return root / "lists"


def _train_args(lists: Path, out: Path, *extra: str):
    from sonar_fixtures import SonarStage, sonar_train_args

    from espnet2_sonar.tasks.sonar import SonarTask

    stage = SonarStage(lists=lists, encoder=out / "unused.pt", tokenizer=out / "unused.pt")
    argv = sonar_train_args(stage, out, max_epoch=1, extra=["--num_iters_per_epoch", "none", *extra])
    args = SonarTask.get_parser().parse_args(argv)
    args.distributed = False
    return args


def _train_factory(args):
    from espnet2.train.distributed_utils import DistributedOption

    from espnet2_sonar.tasks.sonar import SonarTask

    return SonarTask.build_iter_factory(args, DistributedOption(distributed=False), mode="train")


@pytest.mark.timeout(120)
def test_sonar_task_training_batches_hold_the_replay_share(tiny_lists, tmp_path, caplog):
    flags = read_is_replay(tiny_lists / "train" / "is_replay")
    share = sum(flags.values()) / len(flags)
    args = _train_args(tiny_lists, tmp_path / "exp")
    assert args.batch_type == "sorted" and args.replay_mix_batches is True
    inner = [tuple(b) for b in build_batch_sampler(
        type="sorted", batch_size=args.batch_size, batch_bins=args.batch_bins, sort_in_batch=args.sort_in_batch,
        sort_batch=args.sort_batch, shape_files=[str(tiny_lists / "train" / "speech_shape")])]
    inner_shares = [_replay_count(b, flags) / len(b) for b in inner]
    assert min(inner_shares) == 0.0 and max(inner_shares) == 1.0  # sorted batches are pure here

    with caplog.at_level(logging.INFO):
        factory = _train_factory(args)
    assert any("replay share per batch" in r.getMessage() for r in caplog.records)
    seen = []
    for ids, batch in factory.build_iter(1):
        replay = batch["is_replay"].reshape(-1).tolist()  # the flags as the model receives them
        assert replay == [int(flags[k]) for k in ids]
        assert abs(sum(replay) - len(ids) * share) < 1, (ids, replay)
        seen += list(ids)
    assert sorted(seen) == sorted(flags)

    assert sorted(factory.sampler.generate(0)) != sorted(inner)  # re-dealt
    plain = _train_factory(_train_args(tiny_lists, tmp_path / "exp_plain", "--replay_mix_batches", "false"))
    assert [tuple(b) for b in plain.sampler.generate(0)] == inner


@pytest.mark.timeout(120)
def test_sonar_task_bin_batches_are_mixed_and_warn_about_padding(tiny_lists, tmp_path, caplog):
    flags = read_is_replay(tiny_lists / "train" / "is_replay")
    share = sum(flags.values()) / len(flags)
    args = _train_args(tiny_lists, tmp_path / "exp", "--batch_type", "numel", "--batch_bins", str(4 * 18000))
    with caplog.at_level(logging.INFO):
        factory = _train_factory(args)
    batches = factory.sampler.generate(0)
    assert len({len(b) for b in batches}) > 1  # variable sizes from the bins
    assert all(abs(_replay_count(b, flags) - len(b) * share) < 1 for b in batches)
    assert sorted(k for b in batches for k in b) == sorted(flags)
    assert any("batch_type=numel with replay mixing" in r.getMessage() for r in caplog.records)


@pytest.mark.timeout(120)
def test_sonar_task_shards_mixed_batches_over_ranks(tiny_lists, tmp_path, monkeypatch):
    """Distributed: rank r keeps batch[r::2] of every re-dealt batch; the ranks' shares add up."""
    import torch
    from espnet2.train.distributed_utils import DistributedOption

    from espnet2_sonar.tasks.sonar import SonarTask

    flags = read_is_replay(tiny_lists / "train" / "is_replay")
    share = sum(flags.values()) / len(flags)
    args = _train_args(tiny_lists, tmp_path / "exp")
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda *a, **k: 2)
    shards = []
    for rank in (0, 1):
        monkeypatch.setattr(torch.distributed, "get_rank", lambda *a, _r=rank, **k: _r)
        factory = SonarTask.build_iter_factory(args, DistributedOption(distributed=True), mode="train")
        shards.append(factory.sampler.generate(0))
    for part0, part1 in zip(*shards):
        assert not set(part0) & set(part1)
        both = list(part0) + list(part1)
        assert abs(_replay_count(both, flags) - len(both) * share) < 1
        for part in (part0, part1):
            assert abs(_replay_count(part, flags) - len(part) * share) < 1 + len(part) / len(both)
    assert sorted(k for s in shards for b in s for k in b) == sorted(flags)
