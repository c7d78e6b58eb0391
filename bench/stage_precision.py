"""Stage 6 (probe embeddings) and stage 3 (TRSS embeddings) at fp32 vs another precision.

Times the frozen-encoder extraction of both stages at each precision, side by side in one
run, and checks that what they feed downstream is unchanged:
- probes: a frozen probe (``eval.probe.run_probe``, fixed seeds) per task and seed at each
  precision; accuracies side by side;
- TRSS: ``sampling.stratified.stratified_sample`` on the embeddings of each precision
  (same config and seed); the per-stratum allocation and the share of identical replay ids.

On a real run (the default recipe's layout):

    python bench/stage_precision.py --ckpt exp/base/encoder.pt --task_dir data/tasks \\
        --tasks "voice_gender prior_sfx" --prior_scp exp/base/lists/train/wav.scp \\
        --new_scp data/pools/music/wav.scp --max_items 400 --precisions fp32,bf16

Without --ckpt: a random tiny encoder and synthetic tones (a smoke run of the script).
"""

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from espnet2_sonar.utils.precision import autocast_context, precision_record

from roofline import parse_precisions


def _synthetic(root: Path):
    """A random tiny encoder + a 3-class tone task + prior/new pools of tones (wav.scp)."""
    import soundfile as sf

    from espnet2_sonar.beats.encoder import BeatsEncoder
    from espnet2_sonar.beats.interop import save_official

    torch.manual_seed(0)
    ckpt = save_official(BeatsEncoder("tiny").eval(), root / "tiny.pt")
    rng = np.random.default_rng(0)

    def write(d: Path, n: int, freqs, labelled: bool):
        (d / "wav").mkdir(parents=True)
        scp, lab = [], []
        for i in range(n):
            f = freqs[i % len(freqs)]
            x = 0.3 * np.sin(2 * np.pi * f * np.arange(8000) / 16000 + rng.uniform(0, 6))
            x = x + 0.02 * rng.standard_normal(8000)
            path = d / "wav" / f"u{i:03d}.wav"
            sf.write(path, x.astype(np.float32), 16000)
            scp.append(f"{d.name}-u{i:03d} {path}\n")
            lab.append(f"{d.name}-u{i:03d} f{f}\n")
        (d / "wav.scp").write_text("".join(scp))
        if labelled:
            (d / "utt2label").write_text("".join(lab))
        return d

    task = root / "tasks" / "tones"
    write(task / "train", 30, (300, 900, 2500), True), write(task / "test", 30, (300, 900, 2500), True)
    prior = write(root / "prior", 60, (200, 400, 800, 1600, 3200), False)
    new = write(root / "new", 20, (800, 1600), False)
    return ckpt, root / "tasks", ["tones"], prior / "wav.scp", new / "wav.scp"


def _capped_scp(scp: Path, max_items: int, out: Path) -> Path:
    lines = scp.read_text().splitlines()
    if max_items and len(lines) > max_items:
        lines = lines[:: max(1, len(lines) // max_items)][:max_items]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", default=None, help="official BEATs checkpoint (default: synthetic smoke run)")
    p.add_argument("--task_dir", type=Path, default=None, help="dir with <task>/{train,test}")
    p.add_argument("--tasks", default="")
    p.add_argument("--probe_seeds", default="0 1 2")
    p.add_argument("--prior_scp", type=Path, default=None)
    p.add_argument("--new_scp", type=Path, default=None)
    p.add_argument("--max_items", type=int, default=0, help="cap each TRSS list (0: all)")
    p.add_argument("--sample_args", default="--max_seconds 4 --num_strata 32", help="as sonar.sh's sample_args")
    p.add_argument("--precisions", default="fp32,bf16")
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    precisions = parse_precisions(args.precisions)

    from espnet2_sonar.beats.interop import load_official
    from espnet2_sonar.bin.sonar_sample import get_parser as sample_parser
    from espnet2_sonar.eval.probe import ProbeConfig, run_probe
    from espnet2_sonar.sampling.embed import extract_embeddings
    from espnet2_sonar.sampling.stratified import StratifiedSamplerConfig, stratified_sample

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.ckpt is None:
            ckpt, task_dir, tasks, prior_scp, new_scp = _synthetic(tmp)
            sample_argv = ["--num_strata", "4"]
        else:
            ckpt, task_dir, tasks = args.ckpt, args.task_dir, args.tasks.split()
            prior_scp, new_scp, sample_argv = args.prior_scp, args.new_scp, args.sample_args.split()
        print(f"checkpoint {ckpt}; precisions {precisions}; {precision_record(precisions[-1])}")
        warm = load_official(str(ckpt)).eval()  # first-call costs (oneDNN kernels) out of the timings
        for prec in precisions:
            with torch.no_grad(), autocast_context(prec, "cpu"):
                warm.extract_layers(torch.zeros(2, 32000), torch.tensor([32000, 16000]))

        # ---- stage 6: probe embeddings + probes
        seeds = [int(s) for s in args.probe_seeds.split()]
        probe_time, acc = {}, {}
        # two passes, the second in reverse order, best time of each: neither precision profits
        # from the page cache or warm-up of having run second
        for rep, order in enumerate((precisions, precisions[::-1])):
            for prec in order:
                start = time.perf_counter()
                for task in tasks:
                    for seed in seeds:
                        r = run_probe(str(ckpt), str(task_dir / task / "train"), str(task_dir / task / "test"),
                                      seed=seed, config=ProbeConfig(), cache_dir=str(tmp / "cache" / f"{prec}_{rep}"),
                                      precision=prec)
                        acc[(prec, task, seed)] = r["accuracy"]
                took = time.perf_counter() - start  # extraction once per task, then cached probes
                probe_time[prec] = min(probe_time.get(prec, float("inf")), took)
        print(f"\nstage 6 probes ({len(tasks)} tasks x {len(seeds)} seeds, extraction + probe training)")
        print(f"{'task':<16} " + " ".join(f"{p + ' acc':>10}" for p in precisions) + f" {'max |diff|':>11}")
        for task in tasks:
            means = [np.mean([acc[(p, task, s)] for s in seeds]) for p in precisions]
            diff = max(abs(acc[(p, task, s)] - acc[(precisions[0], task, s)]) for p in precisions for s in seeds)
            print(f"{task:<16} " + " ".join(f"{m:>10.4f}" for m in means) + f" {diff:>11.4f}")
        print("wall s: " + ", ".join(f"{p} {probe_time[p]:.1f}" for p in precisions)
              + "".join(f"; {p} speed-up {probe_time[precisions[0]] / probe_time[p]:.2f}x" for p in precisions[1:]))

        # ---- stage 3: TRSS embeddings + allocation
        sargs = sample_parser().parse_args(["--prior_dir", ".", "--new_dir", ".", "--ckpt", str(ckpt),
                                            "--out_dir", "."] + sample_argv)
        config = StratifiedSamplerConfig(num_strata=sargs.num_strata, rho=sargs.rho, alpha=sargs.alpha,
                                         tau=sargs.tau, min_per_stratum=sargs.min_per_stratum,
                                         relevance=sargs.relevance, relevance_temperature=sargs.relevance_temperature,
                                         normalize=sargs.normalize, kmeans_iters=sargs.kmeans_iters, seed=sargs.seed)
        encoder = load_official(str(ckpt)).eval()
        prior_scp = _capped_scp(prior_scp, args.max_items, tmp / "lists" / "prior.scp")
        new_scp = _capped_scp(new_scp, args.max_items, tmp / "lists" / "new.scp")
        trss_time, samples, embs = {}, {}, {}
        for rep, order in enumerate((precisions, precisions[::-1])):  # best of two passes, as above
            for prec in order:
                start = time.perf_counter()
                embs[prec] = {name: extract_embeddings(encoder, scp, tmp / "emb" / f"{prec}_{rep}" / name,
                                                       max_seconds=sargs.max_seconds, batch_size=sargs.batch_size,
                                                       progress=False, precision=prec)
                              for name, scp in (("prior", prior_scp), ("new", new_scp))}
                trss_time[prec] = min(trss_time.get(prec, float("inf")), time.perf_counter() - start)
        for prec in precisions:
            emb = embs[prec]
            samples[prec] = stratified_sample(emb["prior"].ids, emb["prior"].embeddings, emb["new"].embeddings, config)
        ref = samples[precisions[0]]
        # the noise floor: the same fp32 embeddings drawn with the next seed (as the next training seed's run does)
        emb = embs[precisions[0]]
        other_seed = stratified_sample(emb["prior"].ids, emb["prior"].embeddings, emb["new"].embeddings,
                                       dataclasses.replace(config, seed=config.seed + 1))
        print(f"\nstage 3 TRSS embeddings ({prior_scp.read_text().count(chr(10))} prior + "
              f"{new_scp.read_text().count(chr(10))} new clips)")
        for prec in precisions:
            s = samples[prec]
            same_ids = len(set(s.sampled_ids) & set(ref.sampled_ids)) / max(1, len(ref.sampled_ids))
            l1 = int(np.abs(s.allocation.counts - ref.allocation.counts).sum())
            print(f"{prec:>5}: {trss_time[prec]:.1f} s (speed-up {trss_time[precisions[0]] / trss_time[prec]:.2f}x); "
                  f"replay {s.allocation.total}, same ids as {precisions[0]}: {same_ids:.1%}, "
                  f"allocation L1 distance {l1} items")
        same_ids = len(set(other_seed.sampled_ids) & set(ref.sampled_ids)) / max(1, len(ref.sampled_ids))
        l1 = int(np.abs(other_seed.allocation.counts - ref.allocation.counts).sum())
        print(f"noise floor, {precisions[0]} with seed {config.seed + 1} instead of {config.seed}: "
              f"same ids {same_ids:.1%}, allocation L1 distance {l1} items")


if __name__ == "__main__":
    main()
