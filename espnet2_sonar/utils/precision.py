"""Numeric precision of frozen forwards (``--precision fp32|bf16|fp16``).

One option, honoured by every forward that computes features without training them:
tokenizer codes, the teacher M0, TRSS embeddings, probe / drift / S-SONDO embeddings,
PACE features. ``fp32`` is plain float32; ``bf16`` / ``fp16`` run the forward under
``torch.autocast`` (matmuls and convolutions in the low precision, reductions and norms
as autocast decides). Callers cast what they keep or compare back to float32, and the
fbank frontend and the codebook's nearest-code search always run in float32 (they turn
autocast off), so only the transformer's arithmetic changes.

``autocast_context("fp32", ...)`` turns autocast *off*: a frozen forward asked for fp32
runs in fp32 even inside a training step under ``--use_amp``.

What runs where (checked by :func:`check_precision`, whose errors say why):
- CPU: fp32 always; bf16 where oneDNN has native bf16 (AVX-512 BF16 or AMX; elsewhere it
  is emulated and slower than fp32); fp16 only with native fp16 (AVX-512 FP16 / AMX-FP16).
- CUDA: fp32 and fp16 always; bf16 where ``torch.cuda.is_bf16_supported()``.
"""

import argparse
import contextlib
from typing import Dict

import torch

PRECISIONS = ("fp32", "bf16", "fp16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _device_type(device) -> str:
    return torch.device(device).type


def _cpu_supports(precision: str) -> bool:
    if precision == "fp32":
        return True
    if not torch.backends.mkldnn.is_available():
        return False
    if precision == "bf16":
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return bool(torch.ops.mkldnn._is_mkldnn_fp16_supported())


def supported_precisions(device="cpu") -> tuple:
    """The precisions ``check_precision`` accepts on ``device`` (always starts with fp32)."""
    kind = _device_type(device)
    if kind == "cpu":
        return tuple(p for p in PRECISIONS if _cpu_supports(p))
    if kind == "cuda":
        bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return ("fp32", "bf16", "fp16") if bf16 else ("fp32", "fp16")
    return ("fp32",)


def check_precision(precision: str, device="cpu") -> str:
    """Return ``precision`` if ``device`` runs it natively, else raise ValueError saying why."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    kind = _device_type(device)
    ok = supported_precisions(device)
    if precision in ok:
        return precision
    if kind == "cpu":
        flags = "AVX-512 BF16 or AMX" if precision == "bf16" else "AVX-512 FP16 or AMX-FP16"
        reason = (f"this CPU has no native {precision} matmul ({flags}; oneDNN reports none), so "
                  f"autocast would emulate it, slower than fp32")
    elif kind == "cuda":
        name = torch.cuda.get_device_name(torch.device(device)) if torch.cuda.is_available() else "no CUDA device"
        reason = f"{name} does not support bf16 (torch.cuda.is_bf16_supported() is False; it needs Ampere or newer)"
    else:
        reason = f"autocast is not set up for device type {kind!r} here"
    raise ValueError(f"--precision {precision} cannot run on {kind}: {reason}; use one of {', '.join(ok)}")


def autocast_context(precision: str, device="cpu"):
    """Context for a frozen forward in ``precision`` on ``device`` (checked first).

    fp32 -> autocast disabled (fp32 even inside an AMP training step); bf16 / fp16 ->
    ``torch.autocast(device_type, dtype)``.
    """
    check_precision(precision, device)
    kind = _device_type(device)
    if precision == "fp32":
        if kind in ("cpu", "cuda"):
            return torch.autocast(kind, enabled=False)
        return contextlib.nullcontext()
    return torch.autocast(kind, dtype=DTYPES[precision])


def maybe_autocast(precision, device="cpu"):
    """``autocast_context`` when ``precision`` is set; None leaves the surrounding autocast state alone."""
    return contextlib.nullcontext() if precision is None else autocast_context(precision, device)


def precision_record(precision: str, device="cpu") -> Dict[str, str]:
    """What results files store: ``{"precision", "device"}`` (plus the CPU's native low precisions)."""
    rec = {"precision": precision, "device": _device_type(device)}
    if rec["device"] == "cpu":
        rec["native_low_precision"] = ",".join(p for p in supported_precisions("cpu") if p != "fp32") or "none"
    return rec


def add_precision_argument(parser: argparse.ArgumentParser, what: str = "frozen encoder forwards") -> None:
    """``--precision fp32|bf16|fp16`` (default fp32)."""
    parser.add_argument(
        "--precision",
        default="fp32",
        choices=PRECISIONS,
        help=f"numeric precision of the {what} (bf16/fp16 run under torch.autocast; the fbank "
        "frontend stays fp32; outputs are cast back to fp32). Default fp32.",
    )
