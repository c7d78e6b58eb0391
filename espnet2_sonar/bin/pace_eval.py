"""PACE class-incremental evaluation of one backbone, benchmark, method and seed.

    python -m espnet2_sonar.bin.pace_eval --ckpt CKPT --benchmark {coarse,fine} \\
        --method {naive,analytic,analytic_fsa,pace,joint} --out result.json \\
        [--data_dir DATA] [--seed N] [--num_sessions T] [--config method.yaml]

CKPT: an official BEATs ``.pt`` (ours or released), an ESPnet ``.pth`` with its config.yaml
beside it, or an ESPnet exp dir. DATA holds ``tasks/<task>/{train,test}`` (or is the tasks
dir itself). ``--config`` is a YAML mapping of method-config overrides (nested, e.g.
``adapt: {epochs: 3}``; unknown keys are errors). The result JSON holds the per-session
accuracies, the accuracy matrix, average/last accuracy, average forgetting, the class order,
the method config and the adaptation details; ``espnet2_sonar.pace.report`` tabulates them.
"""

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional

from espnet2_sonar.utils.atomic_write import atomic_write


def get_parser() -> argparse.ArgumentParser:
    from espnet2_sonar.pace.benchmarks import BENCHMARK_TASKS
    from espnet2_sonar.pace.methods import METHODS
    from espnet2_sonar.utils.precision import PRECISIONS

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", required=True, help="official .pt, ESPnet .pth or ESPnet exp dir")
    p.add_argument("--ckpt_name", default=None, help="name in the report (default: the file stem)")
    p.add_argument("--benchmark", required=True, choices=sorted(BENCHMARK_TASKS))
    p.add_argument("--method", required=True, choices=sorted(METHODS))
    p.add_argument("--out", required=True, help="result JSON path")
    p.add_argument("--data_dir", default="data", help="dir with tasks/<task>/{train,test} (default: data)")
    p.add_argument("--seed", type=int, default=0, help="class order, random features, training order")
    p.add_argument("--num_sessions", type=int, default=None, help="override benchmark.num_sessions")
    p.add_argument("--config", default=None, help="YAML of method-config overrides")
    p.add_argument("--cache_dir", default=None, help="fbank cache (default: none)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default=None, choices=PRECISIONS,
                   help="precision of the frozen feature extraction (overrides the config's; default fp32)")
    return p


def _overrides(args) -> dict:
    over = {}
    if args.config:
        import yaml

        with open(args.config, encoding="utf-8") as f:
            over = yaml.safe_load(f) or {}
        if not isinstance(over, dict):
            raise ValueError(f"{args.config}: expected a mapping of method-config overrides")
    if args.num_sessions is not None:
        over.setdefault("benchmark", {})["num_sessions"] = args.num_sessions
    if args.precision is not None:
        over["precision"] = args.precision
    return over


def main(argv: Optional[List[str]] = None) -> dict:
    from espnet2_sonar.eval.checkpoints import load_encoder
    from espnet2_sonar.pace.runner import run_pace

    args = get_parser().parse_args(argv)
    result = run_pace(
        ckpt=args.ckpt,
        benchmark=args.benchmark,
        method=args.method,
        data_dir=args.data_dir,
        seed=args.seed,
        overrides=_overrides(args),
        device=args.device,
        cache_dir=args.cache_dir,
        log=lambda s: print(s, file=sys.stderr),
        load_encoder=load_encoder,
    )
    result["ckpt_name"] = args.ckpt_name or Path(args.ckpt).stem
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, json.dumps(result, indent=2) + "\n")
    m = result["metrics"]
    print(
        f"{args.benchmark}/{args.method} seed {args.seed}: average {m['average_accuracy']:.4f}  "
        f"last {m['last_accuracy']:.4f}  forgetting {m['average_forgetting']:.4f} -> {out}",
        file=sys.stderr,
    )
    return result


if __name__ == "__main__":
    main()
