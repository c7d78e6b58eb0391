#!/usr/bin/env python3
"""A randomly initialised BEATs encoder in official format: the probes' floor.

    python -m espnet2_sonar.bin.random_encoder --arch tiny --seed 0 --out exp/random/encoder.pt
    python -m espnet2_sonar.bin.random_encoder --like exp/base/encoder.pt --out exp/random/encoder.pt
"""

import argparse
import sys
from typing import List, Optional

import torch


def main(argv: Optional[List[str]] = None) -> int:
    from espnet2_sonar.beats.config import BeatsConfig
    from espnet2_sonar.beats.encoder import BeatsEncoder
    from espnet2_sonar.beats.interop import save_official

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="tiny", help="tiny | small | base")
    p.add_argument("--like", default=None, help="official checkpoint whose cfg (architecture) to copy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)  # an entry point: module initialisers draw from the global RNG
    if args.like:
        config = BeatsConfig.from_dict(torch.load(args.like, map_location="cpu", weights_only=True)["cfg"])
    else:
        config = BeatsConfig.named(args.arch)
    encoder = BeatsEncoder(config).eval()
    print(save_official(encoder, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
