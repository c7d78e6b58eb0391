#!/usr/bin/env python3
"""SONAR / DCP / BEATs-MAM training: ``python -m espnet2_sonar.bin.sonar_train --config conf/...``."""

from espnet2_sonar.tasks.sonar import SonarTask


def get_parser():
    return SonarTask.get_parser()


def main(cmd=None):
    """Run ESPnet's training loop for SonarTask (all ESPnet options apply)."""
    SonarTask.main(cmd=cmd)


if __name__ == "__main__":
    main()
