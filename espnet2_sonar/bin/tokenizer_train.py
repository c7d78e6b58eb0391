#!/usr/bin/env python3
"""BEATs tokenizer distillation: ``python -m espnet2_sonar.bin.tokenizer_train --config ...``."""

from espnet2_sonar.tasks.tokenizer import TokenizerTask


def get_parser():
    return TokenizerTask.get_parser()


def main(cmd=None):
    """Run ESPnet's training loop for TokenizerTask (all ESPnet options apply)."""
    TokenizerTask.main(cmd=cmd)


if __name__ == "__main__":
    main()
