"""SonarTask: ESPnet task for SONAR / DCP continual pre-training and BEATs base pre-training.

Every swappable part is a ``ClassChoices`` registry, so the usual ESPnet options work:

    --encoder beats            --encoder_conf   {arch: tiny, init: null, config: {}}
    --predictor beats          --predictor_conf {num_layers: 1}
    --tokenizer occ|frozen|random_projection   --tokenizer_conf {...}
    --distill_criterion cosine|mse
    --model_conf {lambda_tok: 1.0, lambda_model: 1.0, ...}   (SonarConfig)

Data: ``speech`` (wav.scp, type ``sonar_sound[_resample][_mix]`` for clear per-file errors)
and optionally ``is_replay`` (``text_int`` file: ``<utt> 0|1``). With ``is_replay`` in the
training data, ``--replay_mix_batches true`` (the default) re-deals the training batches so
each holds the list's replay share, whatever ``--batch_type`` grouped them by length
(``sampling/replay_batches.py``).
"""

import argparse
import copy
import itertools
import logging
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import torch
from espnet2.fileio.read_text import load_num_sequence_text
from espnet2.iterators.abs_iter_factory import AbsIterFactory
from espnet2.iterators.sequence_iter_factory import SequenceIterFactory
from espnet2.samplers.build_batch_sampler import build_batch_sampler
from espnet2.tasks.abs_task import IteratorOptions
from espnet2.asr.encoder.abs_encoder import AbsEncoder
from espnet2.train.class_choices import ClassChoices
from espnet2_sonar.utils.amp_trainer import AmpTrainer
from espnet2.utils.types import str2bool


from espnet2_sonar.distill.criteria import AbsDistillCriterion, CosineDistance, MSEDistance
from espnet2_sonar.beats.predictor import AbsPredictor, BeatsPredictor
from espnet2_sonar.beats.encoder_choice import SonarBeatsEncoder
from espnet2_sonar.sonar.config import SonarConfig
from espnet2_sonar.sonar.model import SonarModel
from espnet2_sonar.sampling.replay_batches import ReplayMixBatchSampler
from espnet2_sonar.tasks.audio_task import AudioTask
from espnet2_sonar.sonar.targets import AbsTargetMaker
from espnet2_sonar.sonar.target_makers import (
    EvolvingTokenizerTargets,
    FrozenTokenizerTargets,
    RandomProjectionTargets,
)

encoder_choices = ClassChoices("encoder", classes=dict(beats=SonarBeatsEncoder), type_check=AbsEncoder, default="beats")
predictor_choices = ClassChoices(
    "predictor", classes=dict(beats=BeatsPredictor), type_check=AbsPredictor, default="beats"
)
tokenizer_choices = ClassChoices(
    "tokenizer",
    classes=dict(
        occ=EvolvingTokenizerTargets,
        frozen=FrozenTokenizerTargets,
        random_projection=RandomProjectionTargets,
    ),
    type_check=AbsTargetMaker,
    default="occ",
)
distill_criterion_choices = ClassChoices(
    "distill_criterion",
    classes=dict(cosine=CosineDistance, mse=MSEDistance),
    type_check=AbsDistillCriterion,
    default="cosine",
)


class SonarTask(AudioTask):
    num_optimizers: int = 1
    class_choices_list = [
        encoder_choices,
        predictor_choices,
        tokenizer_choices,
        distill_criterion_choices,
    ]
    trainer = AmpTrainer  # ESPnet Trainer; --use_amp also on the CPU (bf16)

    model_config_class = SonarConfig
    model_conf_help = ("SonarConfig: lambda_tok, lambda_model, distill_layers, teacher_input, "
                       "mask_prob, seed, head_old_init, frozen_precision (unknown keys are errors)")

    @classmethod
    def add_task_arguments(cls, parser: argparse.ArgumentParser):
        group = parser.add_argument_group(description="Task related")
        cls.add_model_arguments(group)
        group.add_argument(
            "--replay_mix_batches",
            type=str2bool,
            default=True,
            help="When the training data has an is_replay file, re-deal the training batches "
            "(sizes and order from --batch_type) so each holds the list's replay share",
        )

    @classmethod
    def optional_data_names(cls, train: bool = True, inference: bool = False) -> Tuple[str, ...]:
        return ("is_replay",)

    @classmethod
    def build_model(cls, args: argparse.Namespace) -> SonarModel:
        config = SonarConfig.from_dict(args.model_conf)
        encoder = encoder_choices.get_class(args.encoder)(**args.encoder_conf)
        predictor = predictor_choices.get_class(args.predictor)(
            config=encoder.config, **args.predictor_conf
        )
        targets = tokenizer_choices.get_class(args.tokenizer)(**args.tokenizer_conf)
        criterion = distill_criterion_choices.get_class(args.distill_criterion)(
            **args.distill_criterion_conf
        )
        teacher = None
        if config.lambda_model > 0:
            # M0 is the student's initial weights, frozen (a copy, so M can move away).
            teacher = copy.deepcopy(encoder)
        return SonarModel(
            encoder=encoder,
            predictor=predictor,
            targets=targets,
            teacher=teacher,
            criterion=criterion,
            config=config,
        )

    @classmethod
    def build_sequence_iter_factory(
        cls, args: argparse.Namespace, iter_options: IteratorOptions, mode: str
    ) -> AbsIterFactory:
        """ESPnet's iterator, except that training batches are re-dealt by
        :class:`ReplayMixBatchSampler` when the data has ``is_replay`` and --replay_mix_batches.

        Subclasses that do not declare --replay_mix_batches (TokenizerTask) keep ESPnet's batches."""
        flags = _is_replay_file(iter_options)
        mix = getattr(args, "replay_mix_batches", False)
        if mode != "train" or not iter_options.train or flags is None or not mix:
            return super().build_sequence_iter_factory(args, iter_options, mode)

        utt2category = Path(iter_options.data_path_and_name_and_type[0][0]).parent / "utt2category"
        utt2category_file = str(utt2category) if utt2category.exists() else None
        if utt2category_file is not None:
            logging.warning("Reading " + utt2category_file)
        world_size = torch.distributed.get_world_size() if iter_options.distributed else 1
        inner = build_batch_sampler(
            type=iter_options.batch_type,
            shape_files=iter_options.shape_files,
            fold_lengths=args.fold_length,
            batch_size=iter_options.batch_size,
            batch_bins=iter_options.batch_bins,
            sort_in_batch=args.sort_in_batch,
            sort_batch=args.sort_batch,
            drop_last=args.drop_last_iter,
            min_batch_size=world_size if iter_options.distributed else args.min_batch_size,
            utt2category_file=utt2category_file,
        )
        sampler = ReplayMixBatchSampler(inner, flags, world_size=world_size)
        batches = list(sampler)
        if iter_options.num_batches is not None:
            batches = batches[: iter_options.num_batches]
        sizes = [len(b) for b in batches]
        logging.info(f"[{mode}] Batch sampler: {sampler}")
        logging.info(
            f"[{mode}] mini-batch sizes summary: N-batch={len(sizes)}, "
            f"mean={np.mean(sizes):.1f}, min={np.min(sizes)}, max={np.max(sizes)}"
        )
        logging.info(f"[{mode}] {sampler.share_summary()}")
        if iter_options.batch_type in ("numel", "length", "folded"):
            # sizes were set on length-grouped batches: a batch of short clips now pads to long ones
            lengths = load_num_sequence_text(iter_options.shape_files[0], loader_type="csv_int")

            def largest(bs):
                return max(len(b) * max(lengths[k][0] for k in b) for b in bs)

            logging.warning(
                f"[{mode}] batch_type={iter_options.batch_type} with replay mixing: the largest padded batch "
                f"holds {largest(batches)} (batch size x longest item, in units of the first shape file; "
                f"{largest(list(inner))} before re-dealing); lower batch_bins if memory is tight"
            )

        if iter_options.distributed:  # each rank keeps its stride of every batch
            rank = torch.distributed.get_rank()
            for batch in batches:
                if len(batch) < world_size:
                    raise RuntimeError(
                        f"The batch-size must be equal or more than world_size: {len(batch)} < {world_size}"
                    )
            batches = [batch[rank::world_size] for batch in batches]

        dataset = cls.build_dataset(args, iter_options, set(itertools.chain(*batches)))
        logging.info(f"[{mode}] dataset:\n{dataset}")
        return SequenceIterFactory(
            dataset=dataset,
            batches=batches,
            seed=args.seed,
            num_iters_per_epoch=iter_options.num_iters_per_epoch,
            shuffle=iter_options.train,
            shuffle_within_batch=args.shuffle_within_batch,
            num_workers=args.num_workers,
            collate_fn=iter_options.collate_fn,
            pin_memory=args.ngpu > 0,
        )


def _is_replay_file(iter_options: IteratorOptions) -> Optional[str]:
    """Path of the ``is_replay`` entry of the iterator's data, or None."""
    for path, name, _ in iter_options.data_path_and_name_and_type:
        if name == "is_replay":
            return path
    return None
