#!/usr/bin/env python3
"""``espnet2_sonar.bin.probe`` that also loads S-SONDO student checkpoints (``student.pt``).

    python -m espnet2_sonar.bin.ssondo_probe --ckpt exp/.../student.pt --train_dir DIR \\
        --valid_dir DIR --test_dir DIR --seed 0 --out result.json

Same options and output as ``espnet2_sonar.bin.probe``; teacher checkpoints work too.
Becomes an alias once ``eval/checkpoints.py`` dispatches on the checkpoint's ``kind``.
"""

import sys


def main(argv=None) -> dict:
    from espnet2_sonar.bin import probe
    from espnet2_sonar.ssondo.upstream import install_checkpoint_hook

    install_checkpoint_hook()
    return probe.main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
