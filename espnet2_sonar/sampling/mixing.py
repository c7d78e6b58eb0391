"""Training lists that mix new-domain and replay audio at ratio rho (replay : new = rho : 1).

:func:`mix_lists` picks ``round(rho * |new|)`` replay entries (a seeded subsample when the
replay list is longer; a seeded cycle with renamed repeats when it is shorter and
``repeat=True``) and interleaves them evenly with the new entries, so any contiguous
window of the list holds replay and new items close to the ratio (useful with ESPnet's
``unsorted`` batch type; other batch types regroup items by length). :func:`write_mixed_dir`
writes the result as a Kaldi data dir: ``wav.scp``, ``utt2source`` (``new`` / ``replay``)
and ``utt2dur`` when both inputs have one.

Kaldi two-column list helpers (:func:`read_kaldi_map` = ``data.kaldi_dir.read_table``,
:func:`write_kaldi_map`) are importable from here too; the sampling CLI and the embedding cache use them.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

from espnet2_sonar.data.kaldi_dir import read_table as read_kaldi_map  # noqa: F401 (re-exported)
from espnet2_sonar.utils.atomic_write import atomic_path

NEW = "new"
REPLAY = "replay"


def write_kaldi_map(path: str | Path, entries: Dict[str, str] | Sequence[tuple]) -> None:
    """Write ``key value`` lines in the given order (atomically: temp file then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    items = entries.items() if isinstance(entries, dict) else entries
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as f:
        for key, value in items:
            if not key or any(c.isspace() for c in key):
                raise ValueError(f"{path}: invalid Kaldi key {key!r} (empty or contains whitespace)")
            f.write(f"{key} {value}\n")


@dataclass
class MixedList:
    """A mixed training list, in training order.

    ids / values / sources: [N] parallel lists; ``sources[i]`` is ``new`` or ``replay``.
    origin: [N] the replay/new id each entry came from (differs from ``ids`` only for
    renamed repeats, ``<id>__rep<k>``).
    """

    ids: List[str]
    values: List[str]
    sources: List[str]
    origin: List[str]
    num_new: int
    num_replay: int

    @property
    def ratio(self) -> float:
        """Replay items per new item."""
        return self.num_replay / self.num_new if self.num_new else float("inf")


def _interleave(num_a: int, num_b: int) -> List[int]:
    """Even interleaving of a items (0) and b items (1): sort by (i + 0.5) / n, a first on ties."""
    keys = [((i + 0.5) / num_a, 0, i) for i in range(num_a)] + [((j + 0.5) / num_b, 1, j) for j in range(num_b)]
    keys.sort()
    return [k[1] for k in keys]


def mix_lists(
    new: Dict[str, str], replay: Dict[str, str], rho: float, *, seed: int = 0, repeat: bool = False
) -> MixedList:
    """All of ``new`` plus ``round(rho * |new|)`` replay entries, evenly interleaved.

    Raises ValueError when an id occurs in both lists, or when the replay list is too short
    and ``repeat`` is False.
    """
    from espnet2_sonar.sampling.stratified import replay_budget

    if not new:
        raise ValueError("the new-domain list is empty")
    clash = sorted(set(new) & set(replay))
    if clash:
        raise ValueError(f"{len(clash)} ids occur in both the new and the replay list, e.g. {clash[:3]}")
    want = replay_budget(len(new), rho)
    rng = np.random.default_rng(seed)
    replay_ids = list(replay)
    picked: List[tuple] = []  # (id in list, origin id)
    if want <= len(replay_ids):
        idx = np.sort(rng.choice(len(replay_ids), size=want, replace=False)) if want < len(replay_ids) else range(want)
        picked = [(replay_ids[i], replay_ids[i]) for i in idx]
    elif not repeat:
        raise ValueError(
            f"replay list has {len(replay_ids)} entries but rho={rho} needs {want} for {len(new)} new "
            "entries; lower rho or allow repeats (repeat=True)"
        )
    elif not replay_ids:
        raise ValueError(f"replay list is empty but rho={rho} needs {want} entries")
    else:
        rounds = 0
        while len(picked) < want:
            order = rng.permutation(len(replay_ids))[: want - len(picked)]
            for i in order:
                rid = replay_ids[i]
                picked.append((rid if rounds == 0 else f"{rid}__rep{rounds}", rid))
            rounds += 1
        taken = set(new) | set(replay)
        renamed = [p[0] for p in picked if p[0] != p[1]]
        if any(r in taken for r in renamed):
            raise ValueError("renamed repeat ids collide with existing ids")
    new_ids = list(new)
    ids, values, sources, origin = [], [], [], []
    it_new, it_rep = iter(new_ids), iter(picked)
    for which in _interleave(len(new_ids), len(picked)):
        if which == 0:
            k = next(it_new)
            ids.append(k), values.append(new[k]), sources.append(NEW), origin.append(k)
        else:
            k, o = next(it_rep)
            ids.append(k), values.append(replay[o]), sources.append(REPLAY), origin.append(o)
    return MixedList(ids, values, sources, origin, num_new=len(new_ids), num_replay=len(picked))


def write_mixed_dir(
    new_dir: str | Path,
    replay_dir: str | Path,
    out_dir: str | Path,
    rho: float,
    *,
    seed: int = 0,
    repeat: bool = False,
) -> MixedList:
    """Write ``out_dir/{wav.scp,utt2source[,utt2dur]}`` mixing two Kaldi data dirs at ratio rho."""
    new_dir, replay_dir, out_dir = Path(new_dir), Path(replay_dir), Path(out_dir)
    mixed = mix_lists(
        read_kaldi_map(new_dir / "wav.scp"), read_kaldi_map(replay_dir / "wav.scp"), rho, seed=seed, repeat=repeat
    )
    write_kaldi_map(out_dir / "wav.scp", list(zip(mixed.ids, mixed.values)))
    write_kaldi_map(out_dir / "utt2source", list(zip(mixed.ids, mixed.sources)))
    if (new_dir / "utt2dur").is_file() and (replay_dir / "utt2dur").is_file():
        durs = {**read_kaldi_map(replay_dir / "utt2dur"), **read_kaldi_map(new_dir / "utt2dur")}
        missing = [o for o in mixed.origin if o not in durs]
        if missing:
            raise ValueError(f"utt2dur of {new_dir} / {replay_dir} lacks {len(missing)} ids, e.g. {missing[:3]}")
        write_kaldi_map(out_dir / "utt2dur", [(k, durs[o]) for k, o in zip(mixed.ids, mixed.origin)])
    return mixed
