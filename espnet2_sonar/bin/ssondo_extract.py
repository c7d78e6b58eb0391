#!/usr/bin/env python3
"""Teacher embeddings for S-SONDO (extracted once, cached, resumable) and BDS clusters.

    python -m espnet2_sonar.bin.ssondo_extract --teacher exp/base/encoder.pt \\
        --wav_scp exp/ssondo/lists/train/wav.scp --out_dir exp/ssondo/teacher/train \\
        [--crop_seconds 10 --crop_seed 0 --layer -1] [--bds_k 50 --bds_seed 0]

Writes ``out_dir/{embeddings.npy, ids.txt, meta.json, teacher.json, shards/}``; a rerun
resumes from the finished shards and returns at once when everything is there. With
``--bds_k`` it also clusters the embeddings (seeded faiss k-means) into
``out_dir/utt2cluster`` + ``bds.json`` for ``ssondo_train --bds_clusters``.
--crop_seconds / --crop_seed must be the training config's.
"""

import argparse
import sys
from pathlib import Path

from espnet2.utils.types import float_or_none

from espnet2_sonar.utils.precision import add_precision_argument


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", required=True, help="teacher checkpoint: official .pt, ESPnet .pth or exp dir")
    p.add_argument("--wav_scp", required=True)
    p.add_argument("--out_dir", required=True, help="teacher cache dir")
    p.add_argument("--layer", type=int, default=-1, help="teacher hidden state to pool (-1: final output)")
    p.add_argument("--crop_seconds", type=float_or_none, default=10.0, help="as the training config (none: no crop)")
    p.add_argument("--crop_seed", type=int, default=0, help="as the training config")
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--max_batch_seconds", type=float_or_none, default=160.0, help="padded audio per teacher batch")
    p.add_argument("--shard_size", type=int, default=256, help="items per resumable shard")
    p.add_argument("--num_workers", type=int, default=0, help="audio reading threads")
    p.add_argument("--device", default="cpu")
    add_precision_argument(p, "teacher's forward")
    p.add_argument("--bds_k", type=int, default=None, help="k-means clusters for balanced data sampling")
    p.add_argument("--bds_seed", type=int, default=0)
    p.add_argument("--bds_raw", action="store_true", help="cluster raw embeddings (default: L2-normalised, spherical)")
    return p


def main(argv=None) -> int:
    from espnet2_sonar.eval.checkpoints import load_encoder
    from espnet2_sonar.ssondo.bds import fit_bds_clusters, write_utt2cluster
    from espnet2_sonar.ssondo.teacher_cache import cache_teacher_embeddings

    args = get_parser().parse_args(argv)
    result = cache_teacher_embeddings(
        args.teacher,
        args.wav_scp,
        args.out_dir,
        teacher=load_encoder(args.teacher),
        layer=args.layer,
        crop_seconds=args.crop_seconds,
        crop_seed=args.crop_seed,
        batch_size=args.batch_size,
        max_batch_seconds=args.max_batch_seconds,
        shard_size=args.shard_size,
        num_workers=args.num_workers,
        device=args.device,
        precision=args.precision,
    )
    print(f"{args.out_dir}: {len(result)} teacher embeddings of width {result.embeddings.shape[1]}", file=sys.stderr)
    if args.bds_k is not None:
        clusters = fit_bds_clusters(
            result.embeddings, result.ids, args.bds_k, seed=args.bds_seed, normalize=not args.bds_raw
        )
        write_utt2cluster(Path(args.out_dir) / "utt2cluster", clusters)
        s = clusters.summary()
        print(
            f"{args.out_dir}/utt2cluster: {s['num_clusters']} clusters (asked {s['requested_k']}), "
            f"largest {s['largest_share']:.1%}, smallest {s['smallest_share']:.1%} of the items",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
