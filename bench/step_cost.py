"""Training-step cost of SONAR vs DCP (forward + backward + optimizer step), side by side.

Both models are built by ``SonarTask.build_model`` from the tiny YAML configs
(``conf/tiny/train_sonar.yaml``: evolving OCC tokenizer, L_tok, L_model with a frozen
teacher; ``conf/tiny/train_dcp.yaml``: frozen tokenizer, lambdas 0) from the same M0/T0
checkpoints, with the same predictor/head initialisation, on the same batch, with AdamW
as in the configs. Steps of the two alternate, so both see the same machine load; the
median wall and process-CPU step times of each are reported with the ratio SONAR / DCP
(target <= 1.3; on a shared machine, with --threads 1, the CPU-time ratio is the steady one).

M0/T0 are a random tiny encoder and a tiny tokenizer whose codebook is k-means
initialised on the batch (pass --encoder/--tokenizer to use real checkpoints).

Precision axis (``--precisions fp32,bf16``): each step's forward runs under
``torch.autocast`` at that precision, as ``--use_amp`` does in training (``AmpTrainer``;
backward and optimizer outside, codebook statistics fp32), the frozen tokenizer and M0
following the step. Per precision: median step times, the speed-up over fp32, and SONAR's
achieved GFLOP/s (FLOPs of one step counted with ``torch.utils.flop_counter``) next to the
machine's roofline (2048² matmul GFLOP/s at that precision, measured in the same run).
``--config_dir conf/base`` builds the base-size configs instead (pass real checkpoints).

    python bench/step_cost.py [--batch 8 --seconds 2 --steps 20 --threads 1] [--precisions fp32,bf16] [--profile]
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from espnet2_sonar.beats.interop import save_official
from espnet2_sonar.tokenizer.interop import save_official_tokenizer
from espnet2_sonar.beats.encoder_choice import SonarBeatsEncoder
from espnet2_sonar.tasks.sonar import SonarTask
from espnet2_sonar.tokenizer.tokenizer import BeatsTokenizer
from espnet2_sonar.utils.precision import autocast_context

from roofline import count_flops, matmul_gflops, parse_precisions

REPO = Path(__file__).resolve().parents[1]


def synthetic_batch(batch: int, seconds: float, seed: int):
    """Harmonic chirps + noise: speech [B, T], lengths [B] (last item 25% shorter, padded)."""
    g = torch.Generator().manual_seed(seed)
    n = int(seconds * 16000)
    t = torch.arange(n) / 16000.0
    f0 = 100 + 1900 * torch.rand(batch, 1, generator=g)
    phase = 2 * torch.pi * f0 * (t + 0.3 * t**2)
    wavs = 0.3 * torch.sin(phase) + 0.1 * torch.sin(3 * phase) + 0.05 * torch.randn(batch, n, generator=g)
    lengths = torch.full((batch,), n)
    lengths[-1] = int(0.75 * n)
    wavs[-1, lengths[-1]:] = 0.0
    return wavs, lengths


def make_checkpoints(workdir: Path, wavs, lengths, seed: int):
    """Official-format tiny M0 (random) and T0 (codebook k-means-initialised on ``wavs``)."""
    torch.manual_seed(seed)
    encoder = SonarBeatsEncoder("tiny").eval()
    tokenizer = BeatsTokenizer("tiny").train()
    with torch.no_grad():
        tokenizer(wavs, lengths)
    return (save_official(encoder, workdir / "encoder.pt"),
            save_official_tokenizer(tokenizer.eval(), workdir / "tokenizer.pt"))


def build(config: str, encoder: Path, tokenizer: Path, seed: int, model_conf=None, config_dir: Path = None):
    """(model in train mode, AdamW as in the config) for a <config_dir>/<config>.yaml
    (default conf/tiny); ``model_conf`` entries override the config's."""
    config_dir = Path(config_dir or REPO / "conf" / "tiny")
    args = SonarTask.get_parser().parse_args(["--config", str(config_dir / f"{config}.yaml")])
    args.encoder_conf = dict(args.encoder_conf, init=str(encoder))
    args.tokenizer_conf = dict(args.tokenizer_conf, init=str(tokenizer))
    args.model_conf = dict(args.model_conf, **(model_conf or {}))
    torch.manual_seed(seed)  # same predictor / head init for both models
    model = SonarTask.build_model(args).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, **args.optim_conf)
    return model, optimizer


@torch.no_grad()
def share_weights(sonar, dcp) -> bool:
    """Give DCP SONAR's head_new rows (SONAR allocates it at max_codes rows, DCP at K0);
    returns whether encoder, predictor and the live head rows are then identical."""
    k = dcp.head_new.weight.shape[0]
    dcp.head_new.weight.copy_(sonar.head_new.weight[:k])
    dcp.head_new.bias.copy_(sonar.head_new.bias[:k])
    a, b = sonar.state_dict(), dcp.state_dict()
    same = all(torch.equal(a[n], b[n]) for n in b if n.startswith(("encoder.", "predictor.")))
    return same and torch.equal(a["head_new.weight"][:k], b["head_new.weight"])


def step(model, optimizer, wavs, lengths, precision: str = "fp32"):
    optimizer.zero_grad(set_to_none=True)
    with autocast_context(precision, "cpu"):
        loss, _, _ = model(wavs, lengths)
    loss.backward()
    optimizer.step()


def time_pair(sonar, dcp, wavs, lengths, warmup: int, steps: int, precision: str = "fp32"):
    """Wall and process-CPU seconds of every timed step: {'wall'|'cpu': {'sonar'|'dcp': [...]}}.

    Steps alternate between the two models. With one thread the CPU time is the work done,
    nearly unaffected by other processes on a shared machine; the wall time is not.
    """
    for _ in range(warmup):
        step(*sonar, wavs, lengths, precision)
        step(*dcp, wavs, lengths, precision)
    times = {"wall": {"sonar": [], "dcp": []}, "cpu": {"sonar": [], "dcp": []}}
    for _ in range(steps):
        for name, (model, opt) in (("sonar", sonar), ("dcp", dcp)):
            wall, cpu = time.perf_counter(), time.process_time()
            step(model, opt, wavs, lengths, precision)
            times["cpu"][name].append(time.process_time() - cpu)
            times["wall"][name].append(time.perf_counter() - wall)
    return times


def breakdown(model, optimizer, wavs, lengths, steps: int = 5) -> dict:
    """Median process-CPU milliseconds per step in each part of a training step."""
    spent: dict = {}

    def timed(label, fn):
        def wrapped(*args, **kwargs):
            start = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent.setdefault(label, []).append(time.process_time() - start)

        return wrapped

    parts = {"targets (tokenizer, OCC)": model.targets, "predictor": model.predictor, "teacher M0": model.teacher}
    originals = {label: m.forward for label, m in parts.items() if m is not None}
    for label, fn in originals.items():
        parts[label].forward = timed(label, fn)
    encode = model.encoder.encode
    model.encoder.encode = timed("student encoder", encode)
    try:
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            loss, _, _ = timed("forward (all)", model)(wavs, lengths)
            timed("backward", loss.backward)()
            timed("optimizer", optimizer.step)()
    finally:
        for label, fn in originals.items():
            del parts[label].forward
        del model.encoder.encode
    return {label: 1000 * statistics.median(v) for label, v in spent.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8, help="items per step (tiny configs: 8)")
    parser.add_argument("--seconds", type=float, default=2.0, help="audio per item (tiny configs crop to 2 s)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per model")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--encoder", type=Path, default=None, help="official BEATs checkpoint (M0)")
    parser.add_argument("--tokenizer", type=Path, default=None, help="official BEATs tokenizer (T0)")
    parser.add_argument("--profile", action="store_true", help="also print where each model's step spends its time")
    parser.add_argument("--precisions", default="fp32", help="comma-separated autocast precisions, e.g. fp32,bf16")
    parser.add_argument("--config_dir", type=Path, default=REPO / "conf" / "tiny",
                        help="dir with train_sonar.yaml / train_dcp.yaml (default conf/tiny)")
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    precisions = parse_precisions(args.precisions)

    wavs, lengths = synthetic_batch(args.batch, args.seconds, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        encoder, tokenizer = args.encoder, args.tokenizer
        if encoder is None or tokenizer is None:
            made = make_checkpoints(Path(tmp), wavs, lengths, args.seed)
            encoder, tokenizer = encoder or made[0], tokenizer or made[1]
        sonar = build("train_sonar", encoder, tokenizer, args.seed, config_dir=args.config_dir)
        dcp = build("train_dcp", encoder, tokenizer, args.seed, config_dir=args.config_dir)
    same = share_weights(sonar[0], dcp[0])
    trainable = {name: sum(p.numel() for p in m.parameters() if p.requires_grad) for name, (m, _) in
                 (("sonar", sonar), ("dcp", dcp))}

    print(f"batch {args.batch} x {args.seconds:g} s, threads {torch.get_num_threads()}, "
          f"{args.steps} timed steps each after {args.warmup} warm-up; same initial weights: {same}")
    roof = {p: matmul_gflops(p) for p in precisions}
    med = {}
    for prec in precisions:
        times = time_pair(sonar, dcp, wavs, lengths, args.warmup, args.steps, prec)
        med[prec] = {clock: {k: statistics.median(v) for k, v in t.items()} for clock, t in times.items()}
    flops = count_flops(lambda: step(*sonar, wavs, lengths))  # one SONAR step, fp32 (same count at any precision)
    print(f"{'model':<6} {'precision':>9} {'trainable params':>17} {'median wall (ms)':>17} {'median CPU (ms)':>16} "
          f"{'speed-up vs fp32 (wall)':>24}")
    for prec in precisions:
        for name in ("sonar", "dcp"):
            m = med[prec]
            up = f"{med['fp32']['wall'][name] / m['wall'][name]:.2f}x" if "fp32" in med else ""
            print(f"{name:<6} {prec:>9} {trainable[name]:>17,} {1000 * m['wall'][name]:>17.1f} "
                  f"{1000 * m['cpu'][name]:>16.1f} {up:>24}")
    for prec in precisions:
        achieved = flops / med[prec]["wall"]["sonar"] / 1e9
        print(f"roofline {prec}: SONAR step {achieved:.0f} GFLOP/s achieved (wall), "
              f"2048² matmul {roof[prec]:.0f} GFLOP/s")
    ratio = {clock: m["sonar"] / m["dcp"] for clock, m in med[precisions[0]].items()}
    print(f"SONAR / DCP step-time ratio ({precisions[0]}): {ratio['wall']:.2f} wall, {ratio['cpu']:.2f} CPU "
          f"(target <= 1.30); SONAR codebook size now {sonar[0].targets.num_codes}")
    if args.profile:
        parts = {name: breakdown(*m, wavs, lengths) for name, m in (("sonar", sonar), ("dcp", dcp))}
        print(f"{'part of the step (CPU ms, median)':<38} {'sonar':>8} {'dcp':>8}")
        for label in parts["sonar"]:
            print(f"{label:<38} {parts['sonar'][label]:>8.1f} {parts['dcp'].get(label, 0.0):>8.1f}")
    return ratio


if __name__ == "__main__":
    main()
