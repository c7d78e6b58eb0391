"""AudioTask: what every waveform-in ESPnet task of this toolkit shares.

- data: ``speech`` (a wav.scp; use a ``sonar_sound*`` type for clear per-file errors), plus
  the task's optional names (``optional_data_names``);
- ``--crop_seconds``: long audio is cut to a window fixed by a hash of the utterance id
  (the same in every epoch, worker and resumed run);
- collate: zero-padded floats, -1-padded ints.
"""

import argparse
from typing import Callable, Collection, Dict, List, Tuple

import numpy as np
import torch

from espnet2.tasks.abs_task import AbsTask
from espnet2.train.collate_fn import CommonCollateFn
from espnet2.utils.nested_dict_action import NestedDictAction
from espnet2.utils.types import float_or_none

from espnet2_sonar.data.crop import DeterministicCrop
from espnet2_sonar.data.espnet_loader import register_data_types
from espnet2_sonar.utils.sample_rate import SAMPLE_RATE

register_data_types()


class AudioTask(AbsTask):
    """Base of SonarTask, TokenizerTask and DecarTask (subclasses add their own arguments)."""

    model_config_class = None
    """The task's model config (a ``StrictConfig``): ``--model_conf`` defaults to its fields."""
    model_conf_help = ""

    @classmethod
    def add_model_arguments(cls, group) -> None:
        """``--model_conf`` (from ``model_config_class``), ``--crop_seconds`` and every
        ``class_choices_list`` option: the task group shared by SonarTask and DecarTask."""
        group.add_argument(
            "--model_conf",
            action=NestedDictAction,
            default=cls.model_config_class().to_dict(),
            help=cls.model_conf_help,
        )
        cls.add_crop_argument(group)
        for class_choices in cls.class_choices_list:
            class_choices.add_arguments(group)

    @classmethod
    def add_crop_argument(cls, group) -> None:
        group.add_argument(
            "--crop_seconds",
            type=float_or_none,
            default=None,
            help="Crop training/validation audio longer than this to a window fixed by a hash "
            "of the utterance id (the same in every epoch and after --resume)",
        )

    @classmethod
    def build_collate_fn(
        cls, args: argparse.Namespace, train: bool
    ) -> Callable[[Collection[Tuple[str, Dict[str, np.ndarray]]]], Tuple[List[str], Dict[str, torch.Tensor]]]:
        return CommonCollateFn(float_pad_value=0.0, int_pad_value=-1)

    @classmethod
    def build_preprocess_fn(cls, args: argparse.Namespace, train: bool):
        max_samples = None if args.crop_seconds is None else int(round(args.crop_seconds * SAMPLE_RATE))
        return DeterministicCrop(max_samples, seed=args.seed)

    @classmethod
    def required_data_names(cls, train: bool = True, inference: bool = False) -> Tuple[str, ...]:
        return ("speech",)

    @classmethod
    def optional_data_names(cls, train: bool = True, inference: bool = False) -> Tuple[str, ...]:
        return ()
