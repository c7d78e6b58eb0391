#!/usr/bin/env python3
"""Representation drift of continued encoders from their base model on old-domain audio.

    python -m espnet2_sonar.bin.drift --base exp/base/encoder.pt \\
        --ckpts "tseed0/sonar/env=exp/tseed0/sonar/env/encoder.pt tseed0/dcp/env=exp/tseed0/dcp/env/encoder.pt" \\
        --audio "prior=exp/base/lists/valid/wav.scp" --out exp/eval/drift.json

Per checkpoint, audio set and layer: mean cosine distance of the hidden states to the base
model's on the same clips (see ``espnet2_sonar.eval.drift``). Stage 6 of the recipe runs it
on the prior pool's held-out list; the stage-7 report shows it beside the probe results.
"""

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional

from espnet2_sonar.utils.atomic_write import atomic_write


def main(argv: Optional[List[str]] = None) -> dict:
    from tqdm import tqdm

    from espnet2_sonar.eval.drift import representation_drift
    from espnet2_sonar.utils.cli import name_path_pairs
    from espnet2_sonar.utils.precision import add_precision_argument

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True, help="reference (base) encoder checkpoint")
    p.add_argument("--ckpts", required=True, type=str, help='"NAME=CKPT ..."')
    p.add_argument("--audio", required=True, type=str,
                   help='"SET=wav.scp ..." (old-domain audio)')
    p.add_argument("--max_clips", type=int, default=40)
    p.add_argument("--max_seconds", type=float, default=4.0)
    p.add_argument("--out", required=True, help="JSON output")
    add_precision_argument(p, "encoders' forwards (base and checkpoints alike)")
    args = p.parse_args(argv)
    try:
        args.ckpts, args.audio = name_path_pairs(args.ckpts, "--ckpts"), name_path_pairs(args.audio, "--audio")
    except ValueError as e:
        p.error(str(e))
    for name, path in list(args.ckpts.items()) + [("base", args.base)]:
        if not Path(path).exists():
            p.error(f"checkpoint {path} ({name}) does not exist")
    with tqdm(total=len(args.ckpts), desc="drift", unit="ckpt", file=sys.stderr) as bar:
        result = representation_drift(args.base, args.ckpts, args.audio, args.max_clips, args.max_seconds,
                                      progress=lambda name: bar.update(1), precision=args.precision)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, json.dumps(result, indent=2))
    for name, per_set in result["drift"].items():
        print(f"{name:<16} " + "  ".join(f"{s}: last {d['last']:.4f} mean {d['mean']:.4f}" for s, d in per_set.items()))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
