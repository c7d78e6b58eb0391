#!/usr/bin/env python3
"""Calibrate the online clustered codebook's ``novelty_threshold`` on unlabelled pools.

    python -m espnet2_sonar.bin.occ_calibrate --tokenizer exp/base/tokenizer.pt \\
        --pool_dir data/pools/prior --pool_dir data/pools/env [--quantile 0.05] [--out calib.json]

For each pool (a Kaldi dir with ``wav.scp``) it encodes up to ``--max_clips`` clips (the
first ``--max_seconds`` of each) with the tokenizer and records, per patch feature, the best
cosine to the codebook: the quantity OCC compares with ``novelty_threshold``. It prints
percentiles and the share of features below candidate thresholds per pool, and suggests a
threshold: the ``--quantile`` of the *first* pool (the prior pool), i.e. the best cosine
that only that share of already-covered audio falls below. A new domain that is really
novel shows a clearly larger share below it than the prior pool does.
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch

THRESHOLDS = (0.5, 0.6, 0.7, 0.75, 0.8, 0.9)


@torch.no_grad()
def best_cosines(tokenizer, wav_scp: Path, max_clips: int, max_seconds: float, desc: str) -> np.ndarray:
    """Best codebook cosine of every valid patch feature of up to ``max_clips`` clips (evenly spaced)."""
    from tqdm import tqdm

    from espnet2_sonar.eval.drift import read_clips
    from espnet2_sonar.tokenizer.codebook import l2norm

    codes = l2norm(tokenizer.quantize.weight.float())
    out = []
    for wav in tqdm(read_clips(wav_scp, max_clips, max_seconds).values(), desc=desc, unit="clip", file=sys.stderr):
        feats = tokenizer.features(wav[None], torch.tensor([wav.numel()]))
        valid = feats.features[0][~feats.padding_mask[0]] if feats.padding_mask is not None else feats.features[0]
        out.append((l2norm(valid.float()) @ codes.T).max(dim=1).values.numpy())
    return np.concatenate(out)


def summarise(cos: np.ndarray) -> Dict[str, object]:
    return {
        "features": int(cos.size),
        "percentiles": {str(q): float(np.percentile(cos, q)) for q in (1, 5, 25, 50)},
        "share_below": {str(t): float((cos < t).mean()) for t in THRESHOLDS},
    }


def main(argv: Optional[List[str]] = None) -> dict:
    from espnet2_sonar.tokenizer.formats import load_beats_tokenizer

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokenizer", required=True, help="BEATs tokenizer checkpoint (any format) or hf:// spec")
    p.add_argument("--pool_dir", action="append", required=True,
                   help="Kaldi dir with wav.scp; repeat; the first is the prior pool")
    p.add_argument("--quantile", type=float, default=0.05, help="share of the prior pool to call novel")
    p.add_argument("--max_clips", type=int, default=60)
    p.add_argument("--max_seconds", type=float, default=4.0)
    p.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = p.parse_args(argv)
    if not 0.0 < args.quantile < 1.0:
        p.error("--quantile must be in (0, 1)")
    tokenizer = load_beats_tokenizer(args.tokenizer).eval()
    pools = {}
    for pool in args.pool_dir:
        scp = Path(pool) / "wav.scp"
        if not scp.is_file():
            raise FileNotFoundError(f"{scp}: missing (expected a Kaldi dir with wav.scp)")
        pools[pool] = best_cosines(tokenizer, scp, args.max_clips, args.max_seconds, Path(pool).name)
    prior = next(iter(pools.values()))
    threshold = float(np.quantile(prior, args.quantile))
    result = {
        "tokenizer": args.tokenizer,
        "quantile": args.quantile,
        "suggested_novelty_threshold": threshold,
        "pools": {name: summarise(cos) | {"share_below_suggested": float((cos < threshold).mean())}
                  for name, cos in pools.items()},
    }
    print(f"{'pool':<28} {'p5':>6} {'p50':>6} " + " ".join(f"<{t:<5}" for t in THRESHOLDS) + "  <suggested")
    for name, r in result["pools"].items():
        print(f"{Path(name).name:<28} {r['percentiles']['5']:6.3f} {r['percentiles']['50']:6.3f} "
              + " ".join(f"{r['share_below'][str(t)]:6.3f}" for t in THRESHOLDS)
              + f"  {r['share_below_suggested']:.3f}")
    print(f"suggested novelty_threshold: {threshold:.3f} (the {args.quantile:.0%} quantile of {args.pool_dir[0]})")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
