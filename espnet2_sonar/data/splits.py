"""Assigning recordings to sets and splits, with the corpus's leakage rules.

1. Content dedupe: files with identical bytes (sha1) count as one recording. Copies that
   disagree on their task label are all dropped; otherwise the first (by package, path)
   is kept and routed like its task copy, if any.
2. Every recording goes to exactly one place: one split of one task, or one pool. So no
   recording is in two splits, nor in a labelled set and a pool.
3. Split units: animal by (class, source collection); instrument by SF2 instrument; foley by
   source file; the old tasks (voice_gender, prior_sfx) by speaker (a voice, unit or creature),
   and a speaker heard in several classes keeps one split for all of them.
   Segments of one recording always share its split.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from espnet2_sonar.data.catalog import POOLS, Route
from espnet2_sonar.data.corpus import SPLITS, SubsetSpec


@dataclass(frozen=True)
class Candidate:
    """A source recording and where the catalog routes it."""

    rec_id: str  # unique, Kaldi-safe; also the stem of its converted audio
    source: str  # package name
    member: str  # path inside the package ("<sf2 member>#<sample index>" for SF2 samples)
    path: str  # file to decode (the .sf2 for SF2 samples)
    sha1: str
    route: Route
    group: str = ""  # recording group (split unit for group-level splits)
    sf2_sample: int = -1
    extra: dict = field(default_factory=dict, compare=False)


@dataclass
class Assignment:
    """The outcome: task/split/label and pool membership, plus what was dropped and why."""

    tasks: dict = field(default_factory=lambda: defaultdict(lambda: defaultdict(list)))
    """tasks[task][split] -> [Candidate]"""
    pools: dict = field(default_factory=lambda: defaultdict(list))
    """pools[pool] -> [Candidate]"""
    dropped: list = field(default_factory=list)
    """[(Candidate, reason)]"""


def recording_group(member: str) -> str:
    """File stem without a short trailing take number: 'sheep_die2.wav' -> 'sheep_die',
    'bird1_00.ogg' -> 'bird1'; long numbers are ids and stay: 'XC46092' -> 'XC46092'."""
    stem = PurePosixPath(member.split("#")[0]).stem
    return re.sub(r"([-_ .]\d{1,3}|(?<=[A-Za-z])\d{1,2})$", "", stem) or stem


def dedupe(cands: list[Candidate]) -> tuple[list[Candidate], list[tuple[Candidate, str]]]:
    by_hash: dict[str, list[Candidate]] = defaultdict(list)
    for c in sorted(cands, key=lambda c: (c.source, c.member)):
        by_hash[c.sha1].append(c)
    kept, dropped = [], []
    for copies in by_hash.values():
        tasky = [c for c in copies if c.route.label is not None]
        labels = {(c.route.target, c.route.label) for c in tasky}
        if len(labels) > 1:
            dropped += [(c, f"identical content with conflicting labels {sorted(labels)}") for c in copies]
            continue
        first = tasky[0] if tasky else copies[0]
        kept.append(first)
        dropped += [(c, f"duplicate of {first.source}:{first.member}") for c in copies if c is not first]
    return kept, dropped


def _deficit_assign(sizes: dict[str, int], order: list[str], splits: tuple[str, ...],
                    fractions: tuple[float, ...], seeded: dict[str, str]) -> dict[str, str]:
    """Assign the rest of ``order`` greedily to the split furthest below its target share."""
    total = sum(sizes.values()) or 1
    target = dict(zip(splits, fractions))
    count = {s: 0 for s in splits}
    out = dict(seeded)
    for g, s in seeded.items():
        count[s] += sizes[g]
    for g in order:
        if g in out:
            continue
        s = max(splits, key=lambda s: (target[s] - count[s] / total, -splits.index(s)))
        out[g] = s
        count[s] += sizes[g]
    return out


def split_groups(sizes: dict[str, int], fractions: tuple[float, float, float], rng: random.Random,
                 fixed: dict[str, str] | None = None) -> dict[str, str]:
    """Groups -> split; one group: train; two: train/test; three or more: each split gets at
    least one group, the rest follow the train/valid/test fractions (by clip count).

    ``fixed``: groups whose split is already decided (a speaker met in another class of the
    task keeps its split); they count towards the shares, and the other groups fill the
    splits they leave empty first."""
    fixed = {g: fixed[g] for g in sizes if fixed and g in fixed}
    order = sorted(sizes)
    rng.shuffle(order)
    if not fixed:
        if len(order) == 1:
            return {order[0]: "train"}
        if len(order) == 2:
            return {order[0]: "train", order[1]: "test"}
        seeded = {order[0]: "train", order[1]: "test", order[2]: "valid"}
        return _deficit_assign(sizes, order, SPLITS, fractions, seeded)
    free = [g for g in order if g not in fixed]
    empty = [s for s in ("train", "test", "valid") if s not in fixed.values()]
    seeded = dict(fixed) | dict(zip(free, empty))
    return _deficit_assign(sizes, order, SPLITS, fractions, seeded)


def _split_by_collection(items: list[Candidate], spec: SubsetSpec, rng: random.Random) -> dict[str, str]:
    """Animal rule for one class -> {rec_id: split}: whole collections go to one split
    (largest to train, next to test, third to valid, the rest by deficit); a class seen in
    one collection only is split by recording group (needs ``min_single_source_groups``)."""
    by_coll: dict[str, list[Candidate]] = defaultdict(list)
    for c in items:
        by_coll[c.route.collection].append(c)
    if len(by_coll) == 1:
        groups: dict[str, int] = defaultdict(int)
        for c in items:
            groups[c.group] += 1
        if len(groups) < spec.min_single_source_groups:
            return {}
        g2s = split_groups(dict(groups), spec.split_fractions, rng)
        return {c.rec_id: g2s[c.group] for c in items}
    sizes = {k: len(v) for k, v in by_coll.items()}
    order = sorted(sizes, key=lambda k: (-sizes[k], k))
    seeded = dict(zip(order, ("train", "test", "valid")))
    c2s = _deficit_assign(sizes, order, SPLITS, spec.split_fractions, seeded)
    return {c.rec_id: c2s[c.route.collection] for c in items}


def assign(cands: list[Candidate], spec: SubsetSpec, seed: int) -> Assignment:
    """Apply the dedupe, split and cap rules -> Assignment (deterministic given ``seed``)."""
    out = Assignment()
    kept, out.dropped = dedupe(cands)
    by_task: dict[str, list[Candidate]] = defaultdict(list)
    for c in kept:
        (by_task[c.route.target] if c.route.target not in POOLS else out.pools[c.route.target]).append(c)

    def to_fallback(c: Candidate, why: str) -> None:
        if c.route.fallback:
            out.pools[c.route.fallback].append(c)
        else:
            out.dropped.append((c, why))

    for task in sorted(by_task):
        rng = random.Random(f"{seed}-{task}")
        items = sorted(by_task[task], key=lambda c: c.rec_id)
        split_of: dict[str, str] = {}
        group_split: dict[str, str] = {}  # a group (speaker) met in several classes keeps one split
        by_label: dict[str, list[Candidate]] = defaultdict(list)
        for c in items:
            by_label[c.route.label].append(c)
        for label in sorted(by_label):
            group_items = by_label[label]
            if task == "animal":
                split_of.update(_split_by_collection(group_items, spec, rng))
            else:  # instrument: SF2 instrument; foley: file; old tasks: speaker
                sizes: dict[str, int] = defaultdict(int)
                for c in group_items:
                    sizes[c.group] += 1
                g2s = split_groups(dict(sizes), spec.split_fractions, rng, fixed=group_split)
                group_split.update(g2s)
                split_of.update({c.rec_id: g2s[c.group] for c in group_items})
        train_labels = {c.route.label for c in items if split_of.get(c.rec_id) == "train"}
        for c in items:
            s = split_of.get(c.rec_id)
            if s is None:
                to_fallback(c, f"{task}: no split for source {c.route.collection!r}")
            elif c.route.label not in train_labels:
                to_fallback(c, f"{task}: class {c.route.label!r} has no training data")
            else:
                out.tasks[task][s].append(c)
        if spec.max_per_class_split is not None:
            for s in SPLITS:
                per: dict[str, list[Candidate]] = defaultdict(list)
                for c in out.tasks[task][s]:
                    per[c.route.label].append(c)
                keep = []
                for label in sorted(per):
                    lst = per[label]
                    rng.shuffle(lst)
                    keep += lst[: spec.max_per_class_split]
                    for c in lst[spec.max_per_class_split:]:
                        to_fallback(c, f"{task}/{s}: over the per-class cap")
                out.tasks[task][s] = keep
    return out
