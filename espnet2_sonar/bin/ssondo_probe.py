#!/usr/bin/env python3
"""Alias of ``espnet2_sonar.bin.probe``, kept for S-SONDO scripts written against it.

    python -m espnet2_sonar.bin.ssondo_probe --ckpt exp/.../student.pt --train_dir DIR \\
        --valid_dir DIR --test_dir DIR --seed 0 --out result.json

``espnet2_sonar.eval.checkpoints.load_encoder`` reads student checkpoints (``kind:
ssondo_student``) itself, so the plain probe takes them too.
"""

import sys

from espnet2_sonar.bin.probe import main

if __name__ == "__main__":
    main(sys.argv[1:])
