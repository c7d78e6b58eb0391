#!/usr/bin/env python3
"""Export a trained S-SONDO student (SsondoTask exp dir) as a self-describing ``student.pt``.

    python -m espnet2_sonar.bin.ssondo_export --exp_dir exp/ssondo/students/mobilenetv3_bds_s0 \\
        [--out exp/.../student.pt] [--model_file valid.loss.best.pth] [--features backbone|mapped]

The file is what the frozen probe (``espnet2_sonar.bin.probe``) and the s3prl upstream
load, like any encoder checkpoint; see ``espnet2_sonar.students.file`` (the format) and
``espnet2_sonar.ssondo.export``.
"""

import argparse
import sys
from pathlib import Path


def main(argv=None) -> int:
    from espnet2_sonar.ssondo.export import export_student
    from espnet2_sonar.students.file import FEATURES

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp_dir", required=True)
    p.add_argument("--out", default=None, help="default: EXP_DIR/student.pt")
    p.add_argument("--model_file", default=None, help="default: valid.loss.best.pth, else latest.pth")
    p.add_argument("--features", choices=FEATURES, default="backbone", help="what the probe reads")
    args = p.parse_args(argv)
    out = export_student(args.exp_dir, args.out or Path(args.exp_dir) / "student.pt", args.model_file, args.features)
    print(f"student checkpoint: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
