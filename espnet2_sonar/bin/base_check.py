#!/usr/bin/env python3
"""Did each base model (one per training seed) learn the old tasks? Margin over a floor.

    python -m espnet2_sonar.bin.base_check --eval_dir exp_valid/eval --names "seed0 seed1 seed2" \\
        --floor random --tasks "voice_gender prior_sfx" --margin 0.10 --out local/base_valid.json

Reads the probe results ``EVAL_DIR/<name>/<task>/seed<N>.json`` (``bin/probe_matrix``), and
for every name and task gives the mean over probe seeds, its margin over ``--floor`` and
whether it clears the floor by more than the seed std of both and by ``--margin``. Writes
the JSON and a markdown table beside it (``.md``); exits 1 when any base falls short.
"""

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    from espnet2_sonar.eval.report import ReportSpec, reference_results, to_json
    from espnet2_sonar.eval.verdict import clears

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--eval_dir", required=True)
    p.add_argument("--names", required=True, help="base models (one per training seed), under eval_dir")
    p.add_argument("--floor", default="random", help="reference every base must clear")
    p.add_argument("--references", default="logmel", help="other rows shown for context")
    p.add_argument("--tasks", required=True)
    p.add_argument("--seeds", default="0 1 2", help="probe seeds")
    p.add_argument("--margin", type=float, default=0.10, help="required margin (accuracy, 0.10 = 10 points)")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    tasks, names = args.tasks.split(), args.names.split()
    spec = ReportSpec(methods=["base_check"], domains=["none"], tasks=tasks, task_domain={t: "old" for t in tasks})
    seeds = [int(s) for s in args.seeds.split()]
    rows = reference_results(args.eval_dir, spec, names + [args.floor] + args.references.split(), seeds)
    missing = [n for n in names + [args.floor] if n not in rows]
    if missing:
        raise FileNotFoundError(f"{args.eval_dir}: no probe results for {missing}")
    floor = rows[args.floor]
    checks = {}
    for name in names:
        for task in tasks:
            r, f = rows[name][task], floor[task]
            margin = r["mean"] - f["mean"]
            above_noise = clears(r["mean"], r["std"], f["mean"], f["std"])
            checks.setdefault(name, {})[task] = {
                "mean": r["mean"], "std": r["std"], "floor": f["mean"], "floor_std": f["std"], "margin": margin,
                "clears_noise": above_noise, "passes": above_noise and margin >= args.margin}
    ok = all(c["passes"] for per in checks.values() for c in per.values())
    result = {"eval_dir": str(args.eval_dir), "floor": args.floor, "margin_required": args.margin,
              "probe_seeds": seeds, "tasks": tasks, "checks": checks, "rows": rows, "all_pass": ok}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(to_json(result))
    head = ["encoder"] + [f"{t} (%)" for t in tasks]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in list(dict.fromkeys([args.floor] + args.references.split() + names)):
        if name not in rows:
            continue
        cells = []
        for t in tasks:
            r = rows[name][t]
            cell = f"{r['mean'] * 100:.1f} ± {r['std'] * 100:.1f}"
            if name in checks:
                c = checks[name][t]
                cell += f" ({c['margin'] * 100:+.1f}{'' if c['passes'] else ' **short**'})"
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    verdict = "every base clears" if ok else "**not every base clears**"
    md = (f"Base models vs `{args.floor}` on {', '.join(tasks)} (mean ± std over probe seeds "
          f"{args.seeds}; in brackets the margin in points): {verdict} the floor by "
          f"{args.margin * 100:.0f} points and by more than seed noise.\n\n" + "\n".join(lines) + "\n")
    out.with_suffix(".md").write_text(md)
    print(md)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
