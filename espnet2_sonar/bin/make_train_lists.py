#!/usr/bin/env python3
"""Training/validation lists for one SONAR stage.

    python -m espnet2_sonar.bin.make_train_lists --pool_dir data/pools/music \
        --out_dir exp/tseed0/sonar/music/lists [--replay_scp exp/tseed0/sonar/music/replay/wav.scp] [--rho 0.5]

Writes ``out_dir/{train,valid}/{wav.scp,speech_shape,is_replay,utt2dur}``. A fixed share of
the pool (chosen by a hash of the utterance id, so stable across reruns) is held out for
validation losses; the replay list (if any) is mixed into train at ratio rho (replay : new),
evenly interleaved, with ``is_replay`` 1 for replay items. ``speech_shape`` (samples at
16 kHz) comes from ``utt2dur`` and drives ESPnet's batching.
"""

import argparse
import hashlib
import sys
from pathlib import Path

from espnet2_sonar.sampling.mixing import NEW, mix_lists, read_kaldi_map, write_kaldi_map
from espnet2_sonar.utils.sample_rate import SAMPLE_RATE



def _in_valid(uid: str, share: float) -> bool:
    h = int.from_bytes(hashlib.sha256(uid.encode()).digest()[:8], "little")
    return (h % 1_000_000) < share * 1_000_000


def _durations(dirs):
    durs = {}
    for d in dirs:
        f = Path(d) / "utt2dur"
        if not f.is_file():
            raise FileNotFoundError(f"{f}: missing (needed for speech_shape); rerun data preparation")
        durs.update({k: float(v) for k, v in read_kaldi_map(f).items()})
    return durs


def _write(out: Path, ids, values, sources, origin, durs) -> None:
    missing = [o for o in origin if o not in durs]
    if missing:
        raise ValueError(f"no duration for {len(missing)} utterances, e.g. {missing[:3]}")
    write_kaldi_map(out / "wav.scp", list(zip(ids, values)))
    write_kaldi_map(out / "utt2dur", [(k, f"{durs[o]:.3f}") for k, o in zip(ids, origin)])
    write_kaldi_map(out / "speech_shape", [(k, str(max(1, round(durs[o] * SAMPLE_RATE)))) for k, o in zip(ids, origin)])
    write_kaldi_map(out / "is_replay", [(k, "0" if s == NEW else "1") for k, s in zip(ids, sources)])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pool_dir", required=True, help="new-domain Kaldi dir (wav.scp, utt2dur)")
    p.add_argument("--out_dir", required=True)
    p.add_argument("--replay_scp", default=None, help="replay wav.scp (from sonar_sample)")
    p.add_argument("--rho", type=float, default=None, help="replay : new ratio (default: use every replay item)")
    p.add_argument("--valid_share", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    pool = read_kaldi_map(Path(args.pool_dir) / "wav.scp")
    valid_ids = [k for k in pool if _in_valid(k, args.valid_share)]
    if not valid_ids:  # tiny pools: still validate on something
        valid_ids = [sorted(pool)[0]]
    valid_set = set(valid_ids)
    train_new = {k: v for k, v in pool.items() if k not in valid_set}
    if not train_new:
        raise ValueError(f"{args.pool_dir}: pool too small to split ({len(pool)} utterances)")

    dirs = [args.pool_dir]
    replay = {}
    if args.replay_scp:
        replay = read_kaldi_map(args.replay_scp)
        dirs.append(str(Path(args.replay_scp).parent))
    durs = _durations(dirs)
    rho = args.rho if args.rho is not None else len(replay) / len(train_new)
    mixed = mix_lists(train_new, replay, rho, seed=args.seed, repeat=True)

    out = Path(args.out_dir)
    _write(out / "valid", valid_ids, [pool[k] for k in valid_ids], [NEW] * len(valid_ids), valid_ids, durs)
    _write(out / "train", mixed.ids, mixed.values, mixed.sources, mixed.origin, durs)
    print(
        f"{out}: train {mixed.num_new} new + {mixed.num_replay} replay (rho={mixed.ratio:.3f}), "
        f"valid {len(valid_ids)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
