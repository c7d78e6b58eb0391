#!/usr/bin/env python3
"""DECAR pre-training: ``python -m espnet2_sonar.bin.decar_train --config conf/tiny/decar_efficientnet.yaml ...``."""

from espnet2_sonar.tasks.decar import DecarTask


def get_parser():
    return DecarTask.get_parser()


def main(cmd=None):
    """Run ESPnet's training loop for DecarTask (all ESPnet options apply)."""
    DecarTask.main(cmd=cmd)


if __name__ == "__main__":
    main()
