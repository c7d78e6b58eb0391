"""AmpTrainer: ESPnet's Trainer whose ``--use_amp`` also works on the CPU.

ESPnet's ``Trainer.train_one_epoch`` wraps each forward in ``torch.amp.autocast("cuda",
enabled=use_amp, dtype=bf16 if the GPU supports it)`` and builds a ``GradScaler`` (a
no-op for bf16, and disabled without CUDA). On a GPU that is the AMP path, unchanged here.
With ``--ngpu 0`` the "cuda" autocast does not touch CPU ops, so ``--use_amp true`` trained
in fp32. This subclass runs the epoch (training and validation) under
``torch.autocast("cpu", dtype=bfloat16)`` when ``use_amp`` and ``ngpu == 0`` and the CPU
has native bf16; on a CPU without it (emulated bf16 is slower than fp32) it logs why and
trains in fp32, as ESPnet did. No GradScaler is
needed for bf16 (same exponent range as fp32). Parameters, gradients and optimizer state
stay fp32; modules that keep statistics (the codebooks) turn autocast off for them.
"""

import contextlib
import logging

from espnet2.train.trainer import Trainer

from espnet2_sonar.utils.precision import autocast_context


def cpu_amp_context(options):
    """bf16 autocast for a CPU run with ``use_amp`` on a CPU with native bf16; else a context
    that changes nothing."""
    if getattr(options, "use_amp", False) and getattr(options, "ngpu", 0) == 0:
        try:
            return autocast_context("bf16", "cpu")
        except ValueError as e:
            logging.warning("--use_amp: training in fp32 (%s)", e)
    return contextlib.nullcontext()


class AmpTrainer(Trainer):
    """``Trainer`` with CPU bf16 autocast under ``--use_amp`` (see the module docstring)."""

    @classmethod
    def train_one_epoch(cls, model, iterator, optimizers, schedulers, scaler, reporter, summary_writer,
                        options, distributed_option) -> bool:  # fmt: skip
        if getattr(options, "use_amp", False) and options.ngpu == 0:
            logging.info("--use_amp on the CPU: this epoch's forward passes run under bf16 autocast")
        with cpu_amp_context(options):
            return super().train_one_epoch(
                model=model, iterator=iterator, optimizers=optimizers, schedulers=schedulers, scaler=scaler,
                reporter=reporter, summary_writer=summary_writer, options=options,
                distributed_option=distributed_option,
            )

    @classmethod
    def validate_one_epoch(cls, model, iterator, reporter, options, distributed_option) -> None:
        with cpu_amp_context(options):
            return super().validate_one_epoch(
                model=model, iterator=iterator, reporter=reporter, options=options,
                distributed_option=distributed_option,
            )
