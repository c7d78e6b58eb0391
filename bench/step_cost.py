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

    python bench/step_cost.py [--batch 8 --seconds 2 --steps 20 --threads 1] [--profile]
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from espnet2_sonar.beats.interop import save_official
from espnet2_sonar.beats.interop_tokenizer import save_official_tokenizer
from espnet2_sonar.sonar.builders import SonarBeatsEncoder
from espnet2_sonar.tasks.sonar import SonarTask
from espnet2_sonar.tokenizer.tokenizer import BeatsTokenizer

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


def build(config: str, encoder: Path, tokenizer: Path, seed: int):
    """(model in train mode, AdamW as in the config) for a conf/tiny/<config>.yaml."""
    args = SonarTask.get_parser().parse_args(["--config", str(REPO / "conf" / "tiny" / f"{config}.yaml")])
    args.encoder_conf = dict(args.encoder_conf, init=str(encoder))
    args.tokenizer_conf = dict(args.tokenizer_conf, init=str(tokenizer))
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


def step(model, optimizer, wavs, lengths):
    optimizer.zero_grad(set_to_none=True)
    loss, _, _ = model(wavs, lengths)
    loss.backward()
    optimizer.step()


def time_pair(sonar, dcp, wavs, lengths, warmup: int, steps: int):
    """Wall and process-CPU seconds of every timed step: {'wall'|'cpu': {'sonar'|'dcp': [...]}}.

    Steps alternate between the two models. With one thread the CPU time is the work done,
    nearly unaffected by other processes on a shared machine; the wall time is not.
    """
    for _ in range(warmup):
        step(*sonar, wavs, lengths)
        step(*dcp, wavs, lengths)
    times = {"wall": {"sonar": [], "dcp": []}, "cpu": {"sonar": [], "dcp": []}}
    for _ in range(steps):
        for name, (model, opt) in (("sonar", sonar), ("dcp", dcp)):
            wall, cpu = time.perf_counter(), time.process_time()
            step(model, opt, wavs, lengths)
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
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    wavs, lengths = synthetic_batch(args.batch, args.seconds, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        encoder, tokenizer = args.encoder, args.tokenizer
        if encoder is None or tokenizer is None:
            made = make_checkpoints(Path(tmp), wavs, lengths, args.seed)
            encoder, tokenizer = encoder or made[0], tokenizer or made[1]
        sonar = build("train_sonar", encoder, tokenizer, args.seed)
        dcp = build("train_dcp", encoder, tokenizer, args.seed)
    same = share_weights(sonar[0], dcp[0])
    trainable = {name: sum(p.numel() for p in m.parameters() if p.requires_grad) for name, (m, _) in
                 (("sonar", sonar), ("dcp", dcp))}

    times = time_pair(sonar, dcp, wavs, lengths, args.warmup, args.steps)
    med = {clock: {k: statistics.median(v) for k, v in t.items()} for clock, t in times.items()}
    print(f"batch {args.batch} x {args.seconds:g} s, threads {torch.get_num_threads()}, "
          f"{args.steps} timed steps each after {args.warmup} warm-up; same initial weights: {same}")
    print(f"{'model':<6} {'trainable params':>17} {'median wall (ms)':>17} {'median CPU (ms)':>16}")
    for name in ("sonar", "dcp"):
        print(f"{name:<6} {trainable[name]:>17,} {1000 * med['wall'][name]:>17.1f} {1000 * med['cpu'][name]:>16.1f}")
    ratio = {clock: m["sonar"] / m["dcp"] for clock, m in med.items()}
    print(f"SONAR / DCP step-time ratio: {ratio['wall']:.2f} wall, {ratio['cpu']:.2f} CPU (target <= 1.30)"
          f"; SONAR codebook size now {sonar[0].targets.num_codes}")
    if args.profile:
        parts = {name: breakdown(*m, wavs, lengths) for name, m in (("sonar", sonar), ("dcp", dcp))}
        print(f"{'part of the step (CPU ms, median)':<38} {'sonar':>8} {'dcp':>8}")
        for label in parts["sonar"]:
            print(f"{label:<38} {parts['sonar'][label]:>8.1f} {parts['dcp'].get(label, 0.0):>8.1f}")
    return ratio


if __name__ == "__main__":
    main()
