#!/usr/bin/env python3
"""Recipe stage 6: frozen probes for every checkpoint x task x seed, in one process.

    python -m espnet2_sonar.bin.probe_matrix --task_dir data/tasks --out_dir exp/eval \
        --ckpts "base=exp/base/encoder.pt sonar/music=exp/sonar/music/encoder.pt" \
        --tasks "langid instrument animal foley" --seeds "0 1 2"

Writes ``out_dir/<name>/<task>/seed<N>.json`` (the same JSON as ``bin/probe.py``), skipping
results that exist, so an interrupted stage resumes. Pooled embeddings are cached per
checkpoint and data dir under ``--cache_dir`` (default ``out_dir/cache``); the three seeds
of one checkpoint and task reuse one extraction. One process instead of one per probe
saves the toolkit's start-up time on every probe.
"""

import argparse
import json
import os
import sys
from pathlib import Path
from typing import List, Optional


def _pairs(spec: str) -> List[tuple]:
    out = []
    for item in spec.split():
        if "=" not in item:
            raise ValueError(f"--ckpts entries are NAME=PATH, got {item!r}")
        name, path = item.split("=", 1)
        out.append((name, path))
    return out


def main(argv: Optional[List[str]] = None) -> int:
    from tqdm import tqdm

    from espnet2_sonar.eval.probe import ProbeConfig, run_probe

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpts", required=True, help='"NAME=PATH ..." (NAME may contain "/")')
    p.add_argument("--task_dir", required=True, help="dir with <task>/{train,valid,test}/")
    p.add_argument("--tasks", default="langid instrument animal foley")
    p.add_argument("--seeds", default="0 1 2")
    p.add_argument("--out_dir", required=True)
    p.add_argument("--cache_dir", default=None)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)

    out_dir = Path(args.out_dir)
    cache_dir = Path(args.cache_dir) if args.cache_dir else out_dir / "cache"
    jobs = []
    for name, ckpt in _pairs(args.ckpts):
        for task in args.tasks.split():
            for seed in (int(s) for s in args.seeds.split()):
                res = out_dir / name / task / f"seed{seed}.json"
                if not res.exists():
                    jobs.append((name, ckpt, task, seed, res))
    for name, ckpt, task, seed, res in tqdm(jobs, desc="probes", unit="probe"):
        base = Path(args.task_dir) / task
        valid = base / "valid"
        result = run_probe(
            ckpt=ckpt,
            train_dir=str(base / "train"),
            test_dir=str(base / "test"),
            valid_dir=str(valid) if (valid / "wav.scp").exists() else None,
            seed=seed,
            config=ProbeConfig(),
            cache_dir=str(cache_dir),
            device=args.device,
        )
        res.parent.mkdir(parents=True, exist_ok=True)
        tmp = res.with_name(f".{res.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(result, indent=2) + "\n")
        os.replace(tmp, res)
        tqdm.write(f"{name:>14s} {task:>10s} seed{seed}: accuracy {result['accuracy']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
