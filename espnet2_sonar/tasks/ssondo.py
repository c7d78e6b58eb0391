"""SsondoTask: ESPnet task distilling a frozen teacher's clip embeddings into a small student.

    --student mobilenetv3|eres2net|transformer   --student_conf {...}   (students/registry.py)
    --loss cosine|mse|l1|kl                      --loss_conf {...}      (ssondo/losses.py)
    --model_conf {teacher_dim: null, head_hidden: 768, head_dropout: 0.2}
    --crop_seconds 10 --crop_seed 0              must equal the teacher cache's (checked)
    --bds_clusters exp/.../utt2cluster           balanced data sampling (absent: ESPnet's
                                                 usual shuffled batches, the random ablation)

Data: ``speech`` (wav.scp, type ``sonar_sound_resample_mix``) and ``teacher_emb`` (a teacher
cache dir from ``espnet2_sonar.bin.ssondo_extract``, type ``ssondo_embeddings``).
"""

import argparse
import logging
from pathlib import Path
from typing import List, Tuple

import torch
from espnet2.iterators.abs_iter_factory import AbsIterFactory
from espnet2.iterators.sequence_iter_factory import SequenceIterFactory
from espnet2.tasks.abs_task import IteratorOptions
from espnet2.train.class_choices import ClassChoices
from espnet2_sonar.utils.amp_trainer import AmpTrainer
from espnet2.utils.nested_dict_action import NestedDictAction
from espnet2.utils.types import float_or_none, int_or_none, str_or_none

from espnet2_sonar.data.crop import DeterministicCrop
from espnet2_sonar.data.kaldi_dir import read_table
from espnet2_sonar.ssondo.bds import bds_batch_sampler
from espnet2_sonar.ssondo.losses import LOSSES, AbsEmbeddingLoss
from espnet2_sonar.ssondo.model import SsondoConfig, SsondoModel
from espnet2_sonar.ssondo.teacher_cache import TeacherInfo
from espnet2_sonar.ssondo.teacher_cache import register_data_types as register_embedding_types
from espnet2_sonar.students.abs_student import AbsStudent
from espnet2_sonar.students.encoder import StudentEncoder
from espnet2_sonar.students.head import MappingHead
from espnet2_sonar.students.registry import STUDENTS
from espnet2_sonar.tasks.audio_task import AudioTask
from espnet2_sonar.utils.sample_rate import SAMPLE_RATE

register_embedding_types()  # AudioTask registers the sonar_sound* types

TEACHER_EMB = "teacher_emb"

student_choices = ClassChoices("student", classes=dict(STUDENTS), type_check=AbsStudent, default="mobilenetv3")
loss_choices = ClassChoices("loss", classes=dict(LOSSES), type_check=AbsEmbeddingLoss, default="cosine")


def _teacher_caches(args: argparse.Namespace) -> List[str]:
    """Paths of the ``teacher_emb`` entries of the train/valid data options."""
    out = []
    for option in ("train_data_path_and_name_and_type", "valid_data_path_and_name_and_type"):
        for entry in getattr(args, option, None) or []:
            if entry[1] == TEACHER_EMB:
                out.append(entry[0])
    return out


def _cache_dir(path: str) -> Path:
    p = Path(path)
    return p if p.is_dir() else p.parent


class SsondoTask(AudioTask):
    """AudioTask with its own crop (--crop_seed, not --seed: the teacher cache depends on it)."""

    num_optimizers: int = 1
    class_choices_list = [student_choices, loss_choices]
    trainer = AmpTrainer  # ESPnet Trainer; --use_amp also on the CPU (bf16)

    @classmethod
    def add_task_arguments(cls, parser: argparse.ArgumentParser):
        group = parser.add_argument_group(description="Task related")
        group.add_argument(
            "--model_conf",
            action=NestedDictAction,
            default=SsondoConfig().to_dict(),
            help="SsondoConfig: teacher_dim, head_hidden, head_dropout (unknown keys are errors)",
        )
        group.add_argument(
            "--crop_seconds",
            type=float_or_none,
            default=10.0,
            help="Crop audio longer than this to a window fixed by a hash of (crop_seed, utterance id); "
            "must equal the teacher cache's crop",
        )
        group.add_argument("--crop_seed", type=int, default=0, help="Seed of the crop offsets (not --seed)")
        group.add_argument(
            "--bds_clusters",
            type=str_or_none,
            default=None,
            help="utt2cluster file (ssondo_extract --bds_k): draw training batches with balanced data "
            "sampling, weight 1/|cluster|. None: ESPnet's shuffled batches (random sampling)",
        )
        group.add_argument(
            "--bds_batches_per_epoch",
            type=int_or_none,
            default=None,
            help="Batches drawn per epoch with BDS (default: clustered items // batch_size)",
        )
        for class_choices in cls.class_choices_list:
            class_choices.add_arguments(group)

    @classmethod
    def build_preprocess_fn(cls, args: argparse.Namespace, train: bool):
        for path in _teacher_caches(args):
            info = TeacherInfo.read(_cache_dir(path))
            if info.crop_seconds != args.crop_seconds or info.crop_seed != args.crop_seed:
                raise ValueError(
                    f"{path}: teacher embeddings were cut with crop_seconds={info.crop_seconds}, "
                    f"crop_seed={info.crop_seed}, but training uses crop_seconds={args.crop_seconds}, "
                    f"crop_seed={args.crop_seed}; the student would not see what the teacher saw"
                )
        max_samples = None if args.crop_seconds is None else int(round(args.crop_seconds * SAMPLE_RATE))
        return DeterministicCrop(max_samples, seed=args.crop_seed)

    @classmethod
    def required_data_names(cls, train: bool = True, inference: bool = False) -> Tuple[str, ...]:
        return ("speech",) if inference else ("speech", TEACHER_EMB)

    @classmethod
    def build_model(cls, args: argparse.Namespace) -> SsondoModel:
        conf = dict(args.model_conf)
        config = SsondoConfig.from_dict(conf)
        if config.teacher_dim is None:
            caches = _teacher_caches(args)
            if not caches:
                raise ValueError("model_conf.teacher_dim is not set and no teacher_emb data is given to read it from")
            config.teacher_dim = TeacherInfo.read(_cache_dir(caches[0])).dim
            args.model_conf = dict(conf, teacher_dim=config.teacher_dim)  # recorded in config.yaml
        backbone = student_choices.get_class(args.student)(**args.student_conf)
        student = StudentEncoder(backbone)
        head = MappingHead(student.output_size(), config.teacher_dim, config.head_hidden, config.head_dropout)
        loss = loss_choices.get_class(args.loss)(**args.loss_conf)
        return SsondoModel(student=student, head=head, loss=loss)

    @classmethod
    def build_sequence_iter_factory(
        cls, args: argparse.Namespace, iter_options: IteratorOptions, mode: str
    ) -> AbsIterFactory:
        """ESPnet's iterator, except training batches come from the BDS sampler with --bds_clusters."""
        if mode != "train" or getattr(args, "bds_clusters", None) is None:
            return super().build_sequence_iter_factory(args, iter_options, mode)
        speech = [path for path, name, _ in iter_options.data_path_and_name_and_type if name == "speech"]
        train_ids = list(read_table(speech[0]))
        rank, world_size = 0, 1
        if iter_options.distributed:
            rank, world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()
        sampler = bds_batch_sampler(
            args.bds_clusters,
            train_ids,
            iter_options.batch_size,
            args.bds_batches_per_epoch,
            seed=args.seed,
            rank=rank,
            world_size=world_size,
        )
        logging.info(f"[{mode}] BDS batch sampler: {sampler}")
        # any clustered item may be drawn in some epoch
        dataset = cls.build_dataset(args, iter_options, set(read_table(args.bds_clusters)))
        return SequenceIterFactory(
            dataset=dataset,
            batches=sampler,
            seed=args.seed,
            num_iters_per_epoch=iter_options.num_iters_per_epoch,
            shuffle=False,
            num_workers=args.num_workers,
            collate_fn=iter_options.collate_fn,
            pin_memory=args.ngpu > 0,
        )

