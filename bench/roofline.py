"""Roofline helpers shared by the benches: the machine's matmul GFLOP/s per precision, and
the FLOPs of a callable (``torch.utils.flop_counter``, matmuls and convolutions).

    python bench/roofline.py [--size 2048] [--precisions fp32,bf16]
"""

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from espnet2_sonar.utils.precision import DTYPES, PRECISIONS, check_precision


def parse_precisions(text: str) -> list:
    """``"fp32,bf16"`` -> ["fp32", "bf16"], each checked for this CPU (errors say why)."""
    out = [p.strip() for p in text.split(",") if p.strip()]
    for p in out:
        if p not in PRECISIONS:
            raise SystemExit(f"--precisions: {p!r} is not one of {', '.join(PRECISIONS)}")
        check_precision(p, "cpu")
    return out


def matmul_gflops(precision: str, size: int = 2048, repeats: int = 5) -> float:
    """Best GFLOP/s of a plain ``size``² x ``size``² matmul in ``precision`` on the CPU."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=g).to(DTYPES[precision])
    b = torch.randn(size, size, generator=g).to(DTYPES[precision])
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def count_flops(fn) -> int:
    """FLOPs of one call of ``fn()`` (matmuls, convolutions, attention; elementwise ops not counted)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--precisions", default="fp32,bf16")
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    for prec in parse_precisions(args.precisions):
        print(f"{prec}: {matmul_gflops(prec, args.size):.0f} GFLOP/s ({args.size}² matmul, "
              f"{torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
