"""Throughput of espnet2_sonar's BeatsEncoder vs ESPnet's ``espnet2.beats.encoder.BeatsEncoder``.

Both encoders get identical weights (ours saved with ``save_official`` and loaded by
ESPnet) and identical inputs (waveform -> output, fbank included). Reports fbank frames
per second for forward (no grad, eval) and forward+backward (train mode, loss = sum of the
last layer), side by side with the ratio ours / ESPnet.

Precision axis (``--precisions fp32,bf16``): ours runs under ``torch.autocast`` at each
precision (the fbank stays fp32), always against ESPnet's encoder in fp32, the reference
users have today. Each row also gives ours' achieved GFLOP/s (FLOPs counted once with
``torch.utils.flop_counter``) next to the machine's roofline, a plain 2048² matmul's
GFLOP/s at that precision measured in the same run, and for forward the last layer's mean
per-patch cosine to ours in fp32.

For forward+backward both run with ``layer_wise_gradient_decay_ratio = 1``: with any
other ratio ESPnet's ``GradMultiply.apply((x, ratio))`` cuts the graph, so its backward
would skip all but the last layer and the timing would compare unequal work.

    python bench/encoder_throughput.py --arch base --batch 4 --seconds 10 --precisions fp32,bf16
"""

import argparse
import tempfile
import time
from pathlib import Path

import torch

from espnet2.beats.encoder import BeatsEncoder as EspnetBeatsEncoder

from espnet2_sonar.beats.config import BeatsConfig
from espnet2_sonar.beats.encoder import BeatsEncoder
from espnet2_sonar.beats.frontend import FBANK_MEAN, FBANK_STD, num_frames
from espnet2_sonar.beats.interop import save_official
from espnet2_sonar.utils.precision import autocast_context

from roofline import count_flops, matmul_gflops, parse_precisions


def _time_pair(fn_a, fn_b, repeats: int):
    """Best wall time of each function; runs alternate so both see the same machine load."""
    fn_a(), fn_b()  # warm-up
    best_a = best_b = float("inf")
    for _ in range(repeats):
        for fn, which in ((fn_a, "a"), (fn_b, "b")):
            start = time.perf_counter()
            fn()
            took = time.perf_counter() - start
            if which == "a":
                best_a = min(best_a, took)
            else:
                best_b = min(best_b, took)
    return best_a, best_b


def build_pair(config: BeatsConfig, workdir: Path, seed: int):
    torch.manual_seed(seed)
    ours = BeatsEncoder(config)
    path = save_official(ours, workdir / "bench.pt")
    espnet = EspnetBeatsEncoder(input_size=1, beats_ckpt_path=str(path), fbank_mean=FBANK_MEAN, fbank_std=FBANK_STD)
    return ours, espnet


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="tiny", choices=["tiny", "small", "base"])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0, help="audio length per item")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per case (best is reported)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precisions", default="fp32", help="comma-separated, e.g. fp32,bf16 (ours' autocast)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    precisions = parse_precisions(args.precisions)
    roof = {p: matmul_gflops(p) for p in precisions}

    samples = int(args.seconds * 16000)
    gen = torch.Generator().manual_seed(args.seed)
    wavs = 0.1 * torch.randn(args.batch, samples, generator=gen)
    lengths = torch.full((args.batch,), samples, dtype=torch.long)
    frames = args.batch * int(num_frames(lengths[:1]))

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode, ratio in (("forward", None), ("forward+backward", 1.0)):
            overrides = {} if ratio is None else {"layer_wise_gradient_decay_ratio": ratio}
            config = BeatsConfig.named(args.arch, **overrides)
            ours, espnet = build_pair(config, Path(tmp), args.seed)
            if mode == "forward":
                ours.eval(), espnet.eval()
                with torch.no_grad():
                    reference = ours(wavs, lengths)[0].float()

                def make_ours(prec):
                    def run_ours():
                        with torch.no_grad(), autocast_context(prec, "cpu"):
                            return ours(wavs, lengths)[0]
                    return run_ours

                def run_espnet():
                    with torch.no_grad():
                        espnet(wavs, lengths)

            else:
                ours.train(), espnet.train()

                def make_ours(prec):
                    def run_ours():
                        ours.zero_grad(set_to_none=True)
                        with autocast_context(prec, "cpu"):
                            out = ours(wavs, lengths)[0]
                        out.float().sum().backward()
                    return run_ours

                def run_espnet():
                    espnet.zero_grad(set_to_none=True)
                    espnet(wavs, lengths)[0].sum().backward()

            flops = count_flops(make_ours("fp32"))
            for prec in precisions:
                run_ours = make_ours(prec)
                t_ours, t_espnet = _time_pair(run_ours, run_espnet, args.repeats)
                cos = float("nan")
                if mode == "forward":
                    cos = float(torch.nn.functional.cosine_similarity(run_ours().float(), reference, dim=-1).mean())
                rows.append((mode, prec, frames / t_ours, frames / t_espnet, t_espnet / t_ours,
                             flops / t_ours / 1e9, roof[prec], cos))

    params = sum(p.numel() for p in BeatsEncoder(args.arch).parameters())
    print(
        f"arch={args.arch} ({params / 1e6:.1f}M params) batch={args.batch} seconds={args.seconds} "
        f"threads={torch.get_num_threads()} frames/batch={frames}"
    )
    print("roofline (2048² matmul): " + ", ".join(f"{p} {g:.0f} GFLOP/s" for p, g in roof.items()))
    print(f"{'mode':<18} {'ours prec':>9} {'ours frames/s':>14} {'espnet fp32 frames/s':>21} {'ours/espnet':>12} "
          f"{'ours GFLOP/s':>13} {'roof GFLOP/s':>13} {'last-layer cos':>15}")
    for mode, prec, f_ours, f_espnet, ratio, achieved, roof_gf, cos in rows:
        cos_text = "" if cos != cos else f"{cos:.5f}"
        print(f"{mode:<18} {prec:>9} {f_ours:>14.0f} {f_espnet:>21.0f} {ratio:>11.2f}x "
              f"{achieved:>13.0f} {roof_gf:>13.0f} {cos_text:>15}")
    return rows


if __name__ == "__main__":
    main()
