#!/usr/bin/env python3
"""S-SONDO report from the recipe's probe results.

    python -m espnet2_sonar.bin.ssondo_report --eval_dir exp/ssondo/eval \\
        --tasks "voice_gender prior_sfx instrument animal foley" --out_dir exp/ssondo/report

Reads ``eval_dir/{teacher,<student>_<bds|random>[_s<seed>]}/<task>/seed*.json`` and writes
``report.md`` + ``report.json``: parameter counts, size ratio, probe accuracy per task,
share of the teacher's accuracy retained per task and on average, BDS vs random sampling,
and whether a student >= --min_ratio x smaller keeps >= --target % of the teacher's mean.
"""

import argparse
import functools
import sys


def main(argv=None) -> int:
    from espnet2_sonar.eval.checkpoints import load_encoder
    from espnet2_sonar.ssondo.report import build_report, collect, count_params, write_report

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--eval_dir", required=True)
    p.add_argument("--tasks", default="voice_gender prior_sfx instrument animal foley")
    p.add_argument("--out_dir", required=True)
    p.add_argument("--target", type=float, default=85.0, help="retained %% of the teacher's mean accuracy")
    p.add_argument("--min_ratio", type=float, default=10.0, help="students at least this many times smaller")
    args = p.parse_args(argv)
    tasks = args.tasks.split()
    count = functools.partial(count_params, load_encoder=load_encoder)
    report = build_report(collect(args.eval_dir, tasks, count), tasks, args.target, args.min_ratio)
    md = write_report(report, args.out_dir)
    print(md.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
