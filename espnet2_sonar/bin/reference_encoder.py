#!/usr/bin/env python3
"""Reference rows of the probe table that are not trained here: a floor or a teacher.

    python -m espnet2_sonar.bin.reference_encoder --kind logmel_stats --out exp/floors/logmel.pt
    python -m espnet2_sonar.bin.reference_encoder --kind teacher --teacher ge2e --out exp/floors/ge2e.pt

``logmel_stats``: mean + std over time of the 128 fbank bands BEATs reads (the log-mel floor).
``teacher``: a pretrained frame teacher (``espnet2_sonar.teachers``), the most the base model
could learn from it; the file names the teacher, its weights stay in their package.
Both are self-describing ``{'kind': ...}`` files that every probe reads through
``espnet2_sonar.eval.checkpoints.load_encoder``.
"""

import argparse
import sys
from pathlib import Path
from typing import List, Optional

import torch

from espnet2_sonar.utils.atomic_write import atomic_path


def main(argv: Optional[List[str]] = None) -> int:
    from espnet2_sonar.eval.logmel_floor import logmel_checkpoint
    from espnet2_sonar.teachers import TEACHERS, load_teacher, teacher_checkpoint

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kind", required=True, choices=["logmel_stats", "teacher"])
    p.add_argument("--teacher", default=None, choices=sorted(TEACHERS), help="with --kind teacher")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    if args.kind == "teacher":
        if not args.teacher:
            p.error("--kind teacher needs --teacher NAME")
        load_teacher(args.teacher)  # fails now, with what to install, if its package is missing
        ckpt = teacher_checkpoint(args.teacher)
    else:
        ckpt = logmel_checkpoint()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        torch.save(ckpt, tmp)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
