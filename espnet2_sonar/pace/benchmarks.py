"""Class-incremental benchmarks built from the labelled task dirs.

A benchmark pools the classes of some tasks (``coarse``: foley + instrument; ``fine``:
animal + prior_sfx), prefixes every class with its task (``foley/saw``), orders the classes by
a seeded permutation and cuts that order into ``num_sessions`` sessions of disjoint
classes (sizes differ by at most one, earlier sessions get the extra classes). Train and
test items come from the task's existing splits (``DATA/tasks/<task>/{train,valid,test}``,
each with ``wav.scp`` and ``utt2label``): train + valid for training, test for scoring.

Classes are renumbered in session order, so session ``t`` holds the contiguous class
indices ``[offsets[t], offsets[t + 1])`` and a growing classifier only ever appends rows.
"""

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch

from espnet2_sonar.utils.config import StrictConfig

BENCHMARK_TASKS: Dict[str, Tuple[str, ...]] = {
    "coarse": ("foley", "instrument"),
    "fine": ("animal", "prior_sfx"),
}
"""Tasks pooled by each named benchmark."""


@dataclass
class BenchmarkConfig(StrictConfig):
    """How a benchmark is cut; unknown keys are errors (``StrictConfig``)."""

    num_sessions: int = 4
    """Sessions of disjoint classes (at most the number of usable classes)."""
    train_splits: Tuple[str, ...] = ("train", "valid")
    """Splits whose items form the training data. No method selects models on held-out
    data, so the validation split trains too by default; ``("train",)`` leaves it out."""
    test_split: str = "test"
    """Split whose items are scored after every session."""
    min_train_per_class: int = 2
    """Classes with fewer training items are dropped (listed in ``Benchmark.dropped``)."""
    min_test_per_class: int = 1
    """Classes with fewer test items are dropped."""
    max_train_per_class: Optional[int] = None
    """Seeded subsample of each class's training items (None: all)."""
    tasks: Optional[Tuple[str, ...]] = None
    """Override the tasks of the named benchmark."""

    def __post_init__(self):
        self.train_splits = tuple(self.train_splits)
        if self.tasks is not None:
            self.tasks = tuple(self.tasks)
        if self.num_sessions < 1:
            raise ValueError(f"num_sessions must be >= 1, got {self.num_sessions}")
        if self.min_train_per_class < 1 or self.min_test_per_class < 1:
            raise ValueError("min_train_per_class and min_test_per_class must be >= 1")


@dataclass
class Split:
    """Items of one side (train or test) of a benchmark."""

    utt_ids: List[str]
    wav_paths: List[str]
    labels: torch.Tensor
    """LongTensor[n], class indices in session order."""

    def __len__(self) -> int:
        return len(self.utt_ids)

    def select(self, classes: range) -> torch.Tensor:
        """Indices (LongTensor) of the items whose class lies in ``classes``."""
        mask = (self.labels >= classes.start) & (self.labels < classes.stop)
        return torch.nonzero(mask).view(-1)


@dataclass
class Benchmark:
    """A class-incremental sequence over pooled task classes."""

    name: str
    seed: int
    class_names: List[str]
    """``task/label`` names in session order (index = class id)."""
    offsets: List[int]
    """Session boundaries: session t owns classes ``offsets[t]:offsets[t + 1]``."""
    train: Split
    test: Split
    dropped: Dict[str, str] = field(default_factory=dict)
    """Class name -> why it was left out."""
    config: BenchmarkConfig = field(default_factory=BenchmarkConfig)

    @property
    def num_sessions(self) -> int:
        return len(self.offsets) - 1

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def session_classes(self, t: int) -> range:
        """Class ids of session t."""
        return range(self.offsets[t], self.offsets[t + 1])

    def seen_classes(self, t: int) -> range:
        """Class ids of sessions 0..t."""
        return range(0, self.offsets[t + 1])

    def describe(self) -> dict:
        """JSON-ready summary (class order, sessions, sizes, dropped classes)."""
        sessions = []
        for t in range(self.num_sessions):
            c = self.session_classes(t)
            sessions.append(
                {
                    "classes": self.class_names[c.start : c.stop],
                    "n_train": int(self.train.select(c).numel()),
                    "n_test": int(self.test.select(c).numel()),
                }
            )
        return {
            "name": self.name,
            "seed": self.seed,
            "num_classes": self.num_classes,
            "class_order": list(self.class_names),
            "sessions": sessions,
            "dropped": dict(self.dropped),
            "config": dataclasses.asdict(self.config),
        }


def resolve_tasks_dir(data_dir: str | Path) -> Path:
    """``data_dir/tasks`` when it exists (a recipe data dir), else ``data_dir`` itself."""
    data_dir = Path(data_dir)
    return data_dir / "tasks" if (data_dir / "tasks").is_dir() else data_dir


def session_offsets(num_classes: int, num_sessions: int) -> List[int]:
    """Boundaries of ``num_sessions`` near-equal sessions (earlier ones get the remainder)."""
    if num_sessions > num_classes:
        raise ValueError(f"{num_sessions} sessions need at least as many classes, got {num_classes}")
    base, extra = divmod(num_classes, num_sessions)
    offsets = [0]
    for t in range(num_sessions):
        offsets.append(offsets[-1] + base + (1 if t < extra else 0))
    return offsets


def _read_split(task_dir: Path, split: str, task: str) -> List[Tuple[str, str, str]]:
    from espnet2_sonar.data.labelled_dir import read_labelled_dir

    d = read_labelled_dir(task_dir / split)
    return [(f"{task}/{u}", p, f"{task}/{lab}") for u, p, lab in zip(d.utt_ids, d.wav_paths, d.labels)]


def build_benchmark(
    name: str, data_dir: str | Path, seed: int = 0, config: Optional[BenchmarkConfig] = None
) -> Benchmark:
    """Build the named benchmark from ``data_dir`` (see ``resolve_tasks_dir``).

    The class order is ``sorted(classes)`` permuted by ``torch.Generator().manual_seed(seed)``:
    the same seed gives the same order on the same data.
    """
    config = config or BenchmarkConfig()
    tasks = config.tasks or BENCHMARK_TASKS.get(name)
    if tasks is None:
        raise ValueError(f"unknown benchmark {name!r}; known: {sorted(BENCHMARK_TASKS)} (or set tasks)")
    root = resolve_tasks_dir(data_dir)
    train, test = [], []
    for task in tasks:
        task_dir = root / task
        if not task_dir.is_dir():
            raise FileNotFoundError(f"benchmark {name!r}: task dir {task_dir} does not exist")
        for split in config.train_splits:
            train += _read_split(task_dir, split, task)
        test += _read_split(task_dir, config.test_split, task)
    count_train: Dict[str, int] = {}
    count_test: Dict[str, int] = {}
    for _, _, c in train:
        count_train[c] = count_train.get(c, 0) + 1
    for _, _, c in test:
        count_test[c] = count_test.get(c, 0) + 1
    dropped, kept = {}, []
    for c in sorted(set(count_train) | set(count_test)):
        n_tr, n_te = count_train.get(c, 0), count_test.get(c, 0)
        if n_tr < config.min_train_per_class:
            dropped[c] = f"{n_tr} training item(s) < min_train_per_class={config.min_train_per_class}"
        elif n_te < config.min_test_per_class:
            dropped[c] = f"{n_te} test item(s) < min_test_per_class={config.min_test_per_class}"
        else:
            kept.append(c)
    if len(kept) < config.num_sessions:
        raise ValueError(
            f"benchmark {name!r} in {root}: {len(kept)} usable classes for {config.num_sessions} sessions "
            f"(dropped: {dropped})"
        )
    gen = torch.Generator().manual_seed(seed)
    order = [kept[i] for i in torch.randperm(len(kept), generator=gen).tolist()]
    index = {c: i for i, c in enumerate(order)}

    def make_split(items: List[Tuple[str, str, str]], cap: Optional[int]) -> Split:
        items = [it for it in items if it[2] in index]
        if cap is not None:
            chosen = []
            for c in order:
                members = [it for it in items if it[2] == c]
                if len(members) > cap:
                    pick = torch.randperm(len(members), generator=gen)[:cap].sort().values.tolist()
                    members = [members[i] for i in pick]
                chosen += members
            items = chosen
        return Split(
            utt_ids=[u for u, _, _ in items],
            wav_paths=[p for _, p, _ in items],
            labels=torch.tensor([index[c] for _, _, c in items], dtype=torch.long),
        )

    return Benchmark(
        name=name,
        seed=seed,
        class_names=order,
        offsets=session_offsets(len(order), config.num_sessions),
        train=make_split(train, config.max_train_per_class),
        test=make_split(test, None),
        dropped=dropped,
        config=config,
    )
