"""DecarTask: ESPnet task for DECAR (DeepCluster-style) pre-training of an audio encoder.

    --encoder efficientnet     --encoder_conf {arch: tiny|b0, config: {...}, init: null}
    --encoder beats            --encoder_conf {arch: tiny, init: null, config: {}}
    --model_conf {num_clusters: 512, head_dims: [512, 512], pca_dim: 128, ...}  (DecarConfig)
    --crop_seconds 2.0

Data: ``speech`` only (wav.scp with a ``sonar_sound*`` type). Each epoch the trainer
(``DecarTrainer``) clusters the whole training list and the iterators
(``PseudoLabelIterFactory``) sample ``batch_size`` clips per batch uniformly over clusters;
``--batch_type``, ``--batch_bins``, ``--num_iters_per_epoch`` and the shape files are not used
for batching. Outputs: the usual ESPnet exp dir plus ``decar/epochNNN/`` (pseudo-labels,
clustering summaries) and ``encoder.pt`` for the frozen probes.
"""

import argparse
from typing import Optional

from espnet2.asr.encoder.abs_encoder import AbsEncoder
from espnet2.train.class_choices import ClassChoices
from espnet2.train.distributed_utils import DistributedOption
from espnet2.iterators.abs_iter_factory import AbsIterFactory

from espnet2_sonar.data.espnet_loader import read_scp
from espnet2_sonar.decar.config import DecarConfig
from espnet2_sonar.decar.iterator import PseudoLabelIterFactory
from espnet2_sonar.decar.model import DecarModel
from espnet2_sonar.decar.recluster import labels_path
from espnet2_sonar.decar.trainer import WORK_SUBDIR, DecarTrainer, speech_split
from espnet2_sonar.efficientnet.model import EfficientNetEncoder
from espnet2_sonar.beats.encoder_choice import SonarBeatsEncoder
from espnet2_sonar.tasks.audio_task import AudioTask

encoder_choices = ClassChoices(
    "encoder",
    classes=dict(efficientnet=EfficientNetEncoder, beats=SonarBeatsEncoder),
    type_check=AbsEncoder,
    default="efficientnet",
)


def check_cosine_schedule(args: argparse.Namespace) -> None:
    """A cosine schedule (epoch-wise) must not end before training does: past ``T_max``
    CosineAnnealingLR climbs back to the initial lr, which no one asking for a decay wants."""
    if getattr(args, "scheduler", None) != "cosineannealinglr":
        return
    t_max = (getattr(args, "scheduler_conf", None) or {}).get("T_max")
    max_epoch = getattr(args, "max_epoch", None)
    if t_max is None or max_epoch is None or int(t_max) < int(max_epoch):
        raise ValueError(
            f"--scheduler cosineannealinglr: scheduler_conf T_max ({t_max}) must be >= --max_epoch "
            f"({max_epoch}); past T_max the learning rate rises again. Set T_max to max_epoch."
        )


class DecarTask(AudioTask):
    num_optimizers: int = 1
    class_choices_list = [encoder_choices]
    trainer = DecarTrainer

    @classmethod
    def get_parser(cls) -> argparse.ArgumentParser:
        parser = super().get_parser()
        parser.set_defaults(num_att_plot=0)  # no attention maps to plot
        return parser

    model_config_class = DecarConfig
    model_conf_help = ("DecarConfig: num_clusters, head_dims, pca_dim, kmeans_niter, seed, SpecAugment "
                       "and feature-extraction settings (unknown keys are errors)")

    @classmethod
    def add_task_arguments(cls, parser: argparse.ArgumentParser):
        cls.add_model_arguments(parser.add_argument_group(description="Task related"))

    @classmethod
    def build_model(cls, args: argparse.Namespace) -> DecarModel:
        check_cosine_schedule(args)
        config = DecarConfig.from_dict(args.model_conf)
        encoder = encoder_choices.get_class(args.encoder)(**args.encoder_conf)
        return DecarModel(encoder=encoder, config=config)

    @classmethod
    def build_iter_factory(
        cls,
        args: argparse.Namespace,
        distributed_option: DistributedOption,
        mode: str,
        kwargs: Optional[dict] = None,
    ) -> AbsIterFactory:
        """Pseudo-labelled iterators for ``train`` (uniform over clusters) and ``valid``."""
        if mode not in ("train", "valid"):
            return super().build_iter_factory(args, distributed_option, mode, kwargs)
        options = cls.build_iter_options(args, distributed_option, mode)
        dataset = cls.build_dataset(args, options)
        split = speech_split(options.data_path_and_name_and_type, f"{mode} data")
        keys = list(read_scp(split.wav_scp))
        config = DecarConfig.from_dict(args.model_conf)
        work_dir = f"{args.output_dir}/{WORK_SUBDIR}"
        distributed = distributed_option.distributed
        return PseudoLabelIterFactory(
            dataset=dataset,
            keys=keys,
            labels_path=lambda epoch: labels_path(work_dir, epoch, mode),
            batch_size=options.batch_size,
            uniform=mode == "train",
            seed=config.seed,
            draws_per_epoch=config.draws_per_epoch,
            num_workers=args.num_workers,
            collate_fn=options.collate_fn,
            pin_memory=args.ngpu > 0,
            rank=distributed_option.dist_rank if distributed else 0,
            world_size=distributed_option.dist_world_size if distributed else 1,
        )
