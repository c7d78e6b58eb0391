"""s3prl's ``run_downstream.py`` with the BEATs (``sonar_*``) upstreams and the
``sonar_utterance`` downstream available.

    python -m espnet2_sonar.bin.s3prl_downstream -m train -u sonar_local -k exp/model.pt \\
        -d sonar_utterance --train_dir data/train --dev_dir data/dev --test_dir data/test \\
        -p exp/probe_s3prl
    python -m espnet2_sonar.bin.s3prl_downstream -m evaluate -e exp/probe_s3prl/dev-best.ckpt

Every s3prl option works (``-o``, ``-c``, ``-f``, ``-s`` ...); see
``espnet2_sonar.s3prl_upstream.runner`` for what this wrapper adds and patches.
"""

import sys
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> None:
    from espnet2_sonar.s3prl_upstream.runner import run_downstream

    run_downstream(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
