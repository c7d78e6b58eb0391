"""DecarTrainer: ESPnet's Trainer with DeepCluster's epoch hook.

How the per-epoch re-clustering fits ESPnet (espnet2/train/trainer.py, ``Trainer.run``):
for every epoch the Trainer calls ``train_iter_factory.build_iter(epoch)`` and passes the
result to ``train_one_epoch``, then validates with ``valid_iter_factory.build_iter(epoch)``
and saves ``checkpoint.pth``. So:

1. ``train_one_epoch`` (overridden here) first runs the epoch hook: on rank 0, BatchNorm
   running statistics are recomputed on a fixed subset of the list (``batchnorm.py``; DDP
   broadcasts rank 0's buffers), then ``recluster_epoch`` extracts features of the whole
   training (and validation) list with the current weights, clusters them and writes
   ``<output_dir>/decar/epochNNN/*.labels`` (other ranks wait at a barrier); every rank then re-initialises the classifier from a
   generator seeded by (seed, epoch) and drops the optimizer state of its parameters (a
   fresh top layer, as DeepCluster builds one). Then ESPnet's own loop trains.
2. The iterators (``PseudoLabelIterFactory``) are lazy: they read the epoch's labels file
   when iteration starts, i.e. after the hook, sample uniformly over clusters and add
   ``pseudo_label`` to each batch.
3. Resume: ESPnet restarts an interrupted epoch from the checkpoint of the previous one,
   so the weights, and hence the features, are those of the interrupted attempt; the hook
   reuses its finished labels (or resumes its feature extraction), and the classifier
   and sampler draw the same numbers. Interrupted + resumed == uninterrupted.
4. ``run`` recomputes the BatchNorm statistics once more and exports the final encoder to
   ``<output_dir>/encoder.pt`` (the probe format).

Why not an iterator-only or model-only hook: the iterator factory never sees the model and
the model never sees the data list, while the Trainer holds both plus the optimizers (whose
state for the fresh classifier must be dropped); ``train_one_epoch`` is the documented
override point (see ``Trainer``'s docstring).
"""

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from espnet2.train.distributed_utils import DistributedOption
from espnet2.train.trainer import TrainerOptions
from espnet2.utils.build_dataclass import build_dataclass

from espnet2_sonar.decar.batchnorm import recalibrate_batchnorm_
from espnet2_sonar.decar.checkpoint import save_encoder
from espnet2_sonar.decar.cluster_features import sound_reader
from espnet2_sonar.decar.recluster import SplitData, recluster_epoch
from espnet2_sonar.utils.amp_trainer import AmpTrainer
from espnet2_sonar.utils.seeding import derive_seed

WORK_SUBDIR = "decar"


@dataclass
class DecarTrainerOptions(TrainerOptions):
    train_data_path_and_name_and_type: list
    valid_data_path_and_name_and_type: list


def speech_split(data_path_and_name_and_type: Sequence, what: str) -> SplitData:
    """The ``speech`` entry of ESPnet's ``--*_data_path_and_name_and_type`` list."""
    for path, name, kind in data_path_and_name_and_type:
        if name == "speech":
            if not str(kind).startswith("sonar_sound"):
                raise ValueError(f"{what}: DECAR reads audio as 'sonar_sound*' types, got {kind!r} for {path}")
            return SplitData(Path(path), str(kind))
    raise ValueError(f"{what}: no 'speech' entry in {list(data_path_and_name_and_type)}")


def calibrate_batchnorm(model: torch.nn.Module, train: SplitData) -> int:
    """Recompute the BatchNorm statistics of a ``DecarModel`` from its training list."""
    cfg = model.config
    return recalibrate_batchnorm_(
        model,
        lambda wavs, lengths: model.features(wavs, lengths),
        str(train.wav_scp),
        sound_reader(train.loader_type),
        max_clips=cfg.bn_calibration_clips,
        batch_size=cfg.feature_batch_size,
        max_seconds=cfg.feature_max_seconds if cfg.feature_max_seconds > 0 else None,
    )


def reset_classifier(model: torch.nn.Module, optimizers: Sequence[torch.optim.Optimizer], epoch: int) -> None:
    """Re-draw the classifier from (config.seed, epoch) and forget its optimizer state."""
    seed = derive_seed(model.config.seed, "decar.classifier", int(epoch))
    model.reset_classifier_(torch.Generator().manual_seed(seed))
    params = set(model.classifier.parameters())
    for opt in optimizers:
        for p in params:
            opt.state.pop(p, None)


class DecarTrainer(AmpTrainer):
    """See the module docstring."""

    @classmethod
    def build_options(cls, args: argparse.Namespace) -> DecarTrainerOptions:
        return build_dataclass(DecarTrainerOptions, args)

    @classmethod
    def prepare_epoch(
        cls,
        model: torch.nn.Module,
        optimizers: Sequence[torch.optim.Optimizer],
        epoch: int,
        options: DecarTrainerOptions,
        distributed_option: DistributedOption,
    ) -> None:
        """The epoch hook: cluster (rank 0), wait, re-initialise the classifier (all ranks)."""
        core = model.module if hasattr(model, "module") else model
        distributed = distributed_option.distributed
        if not distributed or distributed_option.dist_rank == 0:
            train = speech_split(options.train_data_path_and_name_and_type, "train data")
            calibrate_batchnorm(core, train)
            recluster_epoch(
                core,
                epoch,
                train,
                speech_split(options.valid_data_path_and_name_and_type, "valid data"),
                Path(options.output_dir) / WORK_SUBDIR,
            )
        if distributed:
            torch.distributed.barrier()
        reset_classifier(core, optimizers, epoch)

    @classmethod
    def train_one_epoch(
        cls,
        model,
        iterator,
        optimizers,
        schedulers,
        scaler,
        reporter,
        summary_writer,
        options,
        distributed_option,
    ) -> bool:
        cls.prepare_epoch(model, optimizers, reporter.get_epoch(), options, distributed_option)
        return super().train_one_epoch(
            model=model,
            iterator=iterator,
            optimizers=optimizers,
            schedulers=schedulers,
            scaler=scaler,
            reporter=reporter,
            summary_writer=summary_writer,
            options=options,
            distributed_option=distributed_option,
        )

    @classmethod
    def run(cls, model, optimizers, schedulers, train_iter_factory, valid_iter_factory,
            plot_attention_iter_factory, trainer_options, distributed_option) -> None:  # fmt: skip
        super().run(
            model=model,
            optimizers=optimizers,
            schedulers=schedulers,
            train_iter_factory=train_iter_factory,
            valid_iter_factory=valid_iter_factory,
            plot_attention_iter_factory=plot_attention_iter_factory,
            trainer_options=trainer_options,
            distributed_option=distributed_option,
        )
        if not distributed_option.distributed or distributed_option.dist_rank == 0:
            calibrate_batchnorm(model, speech_split(trainer_options.train_data_path_and_name_and_type, "train data"))
            path = save_encoder(model.encoder, Path(trainer_options.output_dir) / "encoder.pt")
            logging.info(f"encoder for the probes: {path}")

