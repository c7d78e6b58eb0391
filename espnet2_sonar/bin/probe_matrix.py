#!/usr/bin/env python3
"""Recipe stage 6: frozen probes for every checkpoint x task x seed, in one process.

    python -m espnet2_sonar.bin.probe_matrix --task_dir data/tasks --out_dir exp/eval \
        --ckpts "base=exp/base/encoder.pt tseed0/sonar/music=exp/tseed0/sonar/music/encoder.pt" \
        --tasks "voice_gender prior_sfx instrument animal foley" --seeds "0 1 2"

Writes ``out_dir/<name>/<task>/seed<N>.json`` (the same JSON as ``bin/probe.py``), skipping
results that exist, so an interrupted stage resumes. Pooled embeddings are cached per
checkpoint and data dir under ``--cache_dir`` (default ``out_dir/cache``); the three seeds
of one checkpoint and task reuse one extraction. One process instead of one per probe
saves the toolkit's start-up time on every probe.

``--max_per_class N`` probes on at most N utterances per class and split, chosen by a hash
of the utterance id (the same subset for every checkpoint, seed and rerun); the subsets are
written as Kaldi dirs under ``out_dir/subsets`` and recorded in each result. Large tasks
(e.g. spoken language ID with thousands of clips) then cost what small ones do.
"""

import argparse
import json
import os
import sys
from pathlib import Path
from typing import List, Optional


def capped_dir(src: Path, dst: Path, max_per_class: int) -> Path:
    """``src`` (wav.scp + utt2label) with at most ``max_per_class`` utterances per label.

    Utterances are ranked by sha256 of their id within each label, so the subset depends
    on nothing but the ids. Returns ``src`` itself when no class exceeds the cap.
    """
    import hashlib

    from espnet2_sonar.sampling.mixing import read_kaldi_map, write_kaldi_map

    wavs, labels = read_kaldi_map(src / "wav.scp"), read_kaldi_map(src / "utt2label")
    by_label: dict = {}
    for utt in wavs:
        by_label.setdefault(labels.get(utt), []).append(utt)
    if all(len(v) <= max_per_class for v in by_label.values()):
        return src
    keep = set()
    for utts in by_label.values():
        utts.sort(key=lambda u: hashlib.sha256(u.encode()).hexdigest())
        keep.update(utts[:max_per_class])
    kept = [u for u in wavs if u in keep]
    if not (dst / "utt2label").exists():
        write_kaldi_map(dst / "wav.scp", [(u, wavs[u]) for u in kept])
        write_kaldi_map(dst / "utt2label", [(u, labels[u]) for u in kept])
    return dst


def _cap_of(result_file: Path) -> Optional[int]:
    """The ``max_per_class`` an existing result was probed with (None if unreadable)."""
    try:
        return int(json.loads(result_file.read_text()).get("max_per_class", 0))
    except (ValueError, TypeError, OSError):
        return None


def main(argv: Optional[List[str]] = None) -> int:
    from tqdm import tqdm

    from espnet2_sonar.eval.probe import ProbeConfig, run_probe
    from espnet2_sonar.utils.cli import name_path_pairs

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpts", required=True, help='"NAME=PATH ..." (NAME may contain "/")')
    p.add_argument("--task_dir", required=True, help="dir with <task>/{train,valid,test}/")
    p.add_argument("--tasks", default="voice_gender prior_sfx instrument animal foley")
    p.add_argument("--seeds", default="0 1 2")
    p.add_argument("--out_dir", required=True)
    p.add_argument("--cache_dir", default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--max_per_class", type=int, default=0, help="cap per class and split (0: no cap)")
    args = p.parse_args(argv)

    out_dir = Path(args.out_dir)
    cache_dir = Path(args.cache_dir) if args.cache_dir else out_dir / "cache"
    jobs = []
    for name, ckpt in name_path_pairs(args.ckpts, "--ckpts").items():
        for task in args.tasks.split():
            for seed in (int(s) for s in args.seeds.split()):
                res = out_dir / name / task / f"seed{seed}.json"
                if not res.exists() or _cap_of(res) != args.max_per_class:  # absent, or probed on other clips
                    jobs.append((name, ckpt, task, seed, res))
    for name, ckpt, task, seed, res in tqdm(jobs, desc="probes", unit="probe"):
        dirs = {}
        for split in ("train", "valid", "test"):
            src = Path(args.task_dir) / task / split
            if not (src / "wav.scp").exists():
                continue
            dirs[split] = capped_dir(src, out_dir / "subsets" / f"max{args.max_per_class}" / task / split,
                                     args.max_per_class) \
                if args.max_per_class > 0 else src
        result = run_probe(
            ckpt=ckpt,
            train_dir=str(dirs["train"]),
            test_dir=str(dirs["test"]),
            valid_dir=str(dirs["valid"]) if "valid" in dirs else None,
            seed=seed,
            config=ProbeConfig(),
            cache_dir=str(cache_dir),
            device=args.device,
        )
        result["max_per_class"] = args.max_per_class
        res.parent.mkdir(parents=True, exist_ok=True)
        tmp = res.with_name(f".{res.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(result, indent=2) + "\n")
        os.replace(tmp, res)
        tqdm.write(f"{name:>14s} {task:>10s} seed{seed}: accuracy {result['accuracy']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
