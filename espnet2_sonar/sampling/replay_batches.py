"""Batches that each hold the training list's replay share, whatever ESPnet batch type made them.

A SONAR training list mixes new-domain clips with replayed prior-pool clips at
replay : new = rho : 1 (``bin/make_train_lists.py`` writes ``wav.scp``, ``speech_shape`` and
``is_replay``: ``<utt> 0|1``). The design mixes replay *per batch*: every gradient step sees
both the new domain and the old one. The list itself is evenly interleaved, but ESPnet's batch
samplers (``sorted``, ``folded``, ``numel``, ``length``) group clips by length, and the two
sources have very different lengths (prior clips ~2 s, music ~10 s). On such a list the
sorted sampler puts nearly all replay in the first batches and all new clips in the last:
most steps see one source only, and rho holds only over the epoch.

:class:`ReplayMixBatchSampler` wraps any ESPnet batch sampler (built by
``espnet2.samplers.build_batch_sampler.build_batch_sampler``) and re-deals the membership of
its batches:

- the batch sizes and the batch order are the inner sampler's;
- the items are split into two streams, replay and new, each in the order in which the inner
  sampler visits them, so the length grouping survives within each stream (a batch takes the
  next replay clips and the next new clips, which are similar in length to each other);
- with ``share = n_replay / N`` (N: items in the inner batches) and ``S_b`` the number of
  items in batches 0..b, batch b gets ``floor(share * S_b) - floor(share * S_(b-1))`` replay
  items (integer arithmetic). The total is exactly ``n_replay`` and every batch of size B holds
  within one item of ``B * share`` (strictly less than one away), so rho = n_replay / n_new
  holds in each batch up to rounding;
- inside a batch the replay items are spread evenly among the new ones, so a slice of the
  batch keeps the mix too. ESPnet shards a batch over ``world_size`` processes as
  ``batch[rank::world_size]``; given that ``world_size``, each rank's slice gets its own even
  share (the batch's replay count dealt over the slices the same floor way, then interleaved
  within each slice and woven back in rank-stride order).

Every item of the inner batches appears exactly once; nothing is random (same inner batches and
flags, same output), and the per-epoch shuffling of batch order stays ESPnet's. A list with no
replay item, or with replay items only, passes through unchanged.

Caveats:

- Batch sizes come from the inner sampler. For the bin-based types (``numel``, ``length``,
  ``folded``) the sizes were computed on the original, length-grouped batches, so after
  re-dealing ``batch_bins`` (or the folded size rule) holds only approximately: a batch that
  held many short replay clips now holds long new clips too and is padded to the longest one.
  Lower ``batch_bins`` (or use ``sorted`` with a fixed ``batch_size``) if memory is tight.
- Within a batch items are no longer ordered by length (``sort_in_batch``); the collate
  function pads to the longest item either way, and no SONAR model packs sequences.

:func:`read_is_replay` reads and validates the flags file (errors name the file and line).
"""

from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Mapping, Sequence, Tuple

from espnet2.samplers.abs_sampler import AbsSampler

from espnet2_sonar.sampling.mixing import _interleave


class ReplayFlagsError(ValueError):
    """A malformed or incomplete ``is_replay`` file; the message names the file."""


def read_is_replay(path: str | Path) -> Dict[str, bool]:
    """``<utt> 0|1`` lines -> {utt: is_replay}. Blank lines are skipped; any other value,
    a missing value or a repeated key raises :class:`ReplayFlagsError` naming file and line."""
    path = Path(path)
    flags: Dict[str, bool] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ReplayFlagsError(f"{path}: cannot read the is_replay file ({e})") from e
    for lineno, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in ("0", "1"):
            raise ReplayFlagsError(f"{path}:{lineno}: expected '<utt> 0|1', got {line.strip()!r}")
        if fields[0] in flags:
            raise ReplayFlagsError(f"{path}:{lineno}: utterance {fields[0]!r} listed twice")
        flags[fields[0]] = fields[1] == "1"
    return flags


def replay_counts(sizes: Sequence[int], num_replay: int) -> List[int]:
    """Replay items per batch: ``floor(R * S_b / N) - floor(R * S_(b-1) / N)``.

    sizes: [num_batches] batch sizes (N = their sum); num_replay: R, 0 <= R <= N.
    The counts sum to R and each is within one item of ``size * R / N`` (and <= size).
    """
    total = sum(sizes)
    if not 0 <= num_replay <= total:
        raise ValueError(f"num_replay={num_replay} is not within [0, {total}]")
    counts, cum, prev = [], 0, 0
    for size in sizes:
        cum += size
        now = num_replay * cum // total if total else 0
        counts.append(now - prev)
        prev = now
    return counts


def _arrange(new: Sequence[str], replay: Sequence[str], world_size: int) -> Tuple[str, ...]:
    """One batch: ``new`` and ``replay`` items (each kept in order) laid out so that every
    rank slice ``batch[r::world_size]`` holds an even share of replay, interleaved evenly."""
    size = len(new) + len(replay)
    world_size = max(1, min(world_size, size)) if size else 1
    slice_sizes = [len(range(r, size, world_size)) for r in range(world_size)]
    per_slice = replay_counts(slice_sizes, len(replay))
    it_new, it_rep = iter(new), iter(replay)
    slices = []
    for n_slice, n_rep in zip(slice_sizes, per_slice):
        order = _interleave(n_slice - n_rep, n_rep)  # 0: new, 1: replay
        slices.append([next(it_rep) if which else next(it_new) for which in order])
    out: List[str] = [""] * size
    for r, items in enumerate(slices):
        out[r::world_size] = items
    return tuple(out)


def mix_batches(
    batches: Iterable[Sequence[str]],
    is_replay: Mapping[str, bool],
    world_size: int = 1,
    source: str = "is_replay",
) -> List[Tuple[str, ...]]:
    """Re-deal ``batches`` (same sizes and order) so each holds the overall replay share.

    is_replay: {utt: bool} covering every batched key (extra keys are ignored);
    source: what to name in the error for missing keys (the flags file).
    """
    batches = [tuple(b) for b in batches]
    keys = [k for b in batches for k in b]
    missing = [k for k in keys if k not in is_replay]
    if missing:
        raise ReplayFlagsError(
            f"{source}: no entry for {len(missing)} of the {len(keys)} batched utterances, "
            f"e.g. {missing[:3]}; regenerate the lists (espnet2_sonar.bin.make_train_lists)"
        )
    replay = [k for k in keys if is_replay[k]]
    if not replay or len(replay) == len(keys):
        return batches
    new = [k for k in keys if not is_replay[k]]
    out, i_new, i_rep = [], 0, 0
    for batch, n_rep in zip(batches, replay_counts([len(b) for b in batches], len(replay))):
        n_new = len(batch) - n_rep
        out.append(_arrange(new[i_new : i_new + n_new], replay[i_rep : i_rep + n_rep], world_size))
        i_new, i_rep = i_new + n_new, i_rep + n_rep
    return out


class ReplayMixBatchSampler(AbsSampler):
    """ESPnet batch sampler: the inner sampler's batches, re-dealt to the list's replay share.

    Args:
        inner: an ESPnet batch sampler, or any iterable of batches (sequences of keys).
        is_replay_file: ``<utt> 0|1`` for (at least) every key the inner sampler yields.
        world_size: processes each batch is sliced over (``batch[rank::world_size]``).
    """

    def __init__(self, inner: AbsSampler | Iterable[Sequence[str]], is_replay_file: str | Path, world_size: int = 1):
        if world_size < 1:
            raise ValueError(f"world_size must be >= 1, got {world_size}")
        self.inner = inner
        self.is_replay_file = str(is_replay_file)
        self.world_size = world_size
        flags = read_is_replay(is_replay_file)
        self.batch_list = mix_batches(inner, flags, world_size=world_size, source=self.is_replay_file)
        self.replay_per_batch = [sum(flags[k] for k in b) for b in self.batch_list]
        total = sum(len(b) for b in self.batch_list)
        self.share = sum(self.replay_per_batch) / total if total else 0.0

    def batch_shares(self) -> List[float]:
        """[num_batches] replay fraction of each batch."""
        return [r / len(b) for r, b in zip(self.replay_per_batch, self.batch_list)]

    def share_summary(self) -> str:
        shares = self.batch_shares() or [0.0]
        return (
            f"replay share per batch: target={self.share:.3f}, min={min(shares):.3f}, "
            f"mean={sum(shares) / len(shares):.3f}, max={max(shares):.3f} "
            f"({sum(self.replay_per_batch)} replay items in {len(self.batch_list)} batches)"
        )

    def __repr__(self):
        return (
            f"{self.__class__.__name__}(N-batch={len(self)}, share={self.share:.3f}, "
            f"world_size={self.world_size}, is_replay_file={self.is_replay_file}, inner={self.inner!r})"
        )

    def __len__(self) -> int:
        return len(self.batch_list)

    def __iter__(self) -> Iterator[Tuple[str, ...]]:
        return iter(self.batch_list)
