#!/usr/bin/env python3
"""S-SONDO student training: ``python -m espnet2_sonar.bin.ssondo_train --config conf/tiny/ssondo_*.yaml ...``."""

from espnet2_sonar.tasks.ssondo import SsondoTask


def get_parser():
    return SsondoTask.get_parser()


def main(cmd=None):
    """Run ESPnet's training loop for SsondoTask (all ESPnet options apply)."""
    SsondoTask.main(cmd=cmd)


if __name__ == "__main__":
    main()
