"""SonarTask: ESPnet task for SONAR / DCP continual pre-training and BEATs base pre-training.

Every swappable part is a ``ClassChoices`` registry, so the usual ESPnet options work:

    --encoder beats            --encoder_conf   {arch: tiny, init: null, config: {}}
    --predictor beats          --predictor_conf {num_layers: 1}
    --tokenizer occ|frozen|random_projection   --tokenizer_conf {...}
    --distill_criterion cosine|mse
    --model_conf {lambda_tok: 1.0, lambda_model: 1.0, ...}   (SonarConfig)

Data: ``speech`` (wav.scp, type ``sonar_sound[_resample][_mix]`` for clear per-file errors)
and optionally ``is_replay`` (``text_int`` file: ``<utt> 0|1``).
"""

import argparse
import copy
from typing import Tuple

from espnet2.train.class_choices import ClassChoices
from espnet2.train.trainer import Trainer


from espnet2_sonar.distill.criteria import CosineDistance, MSEDistance
from espnet2_sonar.beats.predictor import BeatsPredictor
from espnet2_sonar.sonar.builders import SonarBeatsEncoder
from espnet2_sonar.sonar.config import SonarConfig
from espnet2_sonar.sonar.model import SonarModel
from espnet2_sonar.tasks.audio_task import AudioTask
from espnet2_sonar.sonar.tokenizers import (
    EvolvingTokenizerTargets,
    FrozenTokenizerTargets,
    RandomProjectionTargets,
)

encoder_choices = ClassChoices("encoder", classes=dict(beats=SonarBeatsEncoder), default="beats")
predictor_choices = ClassChoices("predictor", classes=dict(beats=BeatsPredictor), default="beats")
tokenizer_choices = ClassChoices(
    "tokenizer",
    classes=dict(
        occ=EvolvingTokenizerTargets,
        frozen=FrozenTokenizerTargets,
        random_projection=RandomProjectionTargets,
    ),
    default="occ",
)
distill_criterion_choices = ClassChoices(
    "distill_criterion", classes=dict(cosine=CosineDistance, mse=MSEDistance), default="cosine"
)


class SonarTask(AudioTask):
    num_optimizers: int = 1
    class_choices_list = [
        encoder_choices,
        predictor_choices,
        tokenizer_choices,
        distill_criterion_choices,
    ]
    trainer = Trainer

    model_config_class = SonarConfig
    model_conf_help = ("SonarConfig: lambda_tok, lambda_model, distill_layers, teacher_input, "
                       "mask_prob, seed, head_old_init (unknown keys are errors)")

    @classmethod
    def add_task_arguments(cls, parser: argparse.ArgumentParser):
        cls.add_model_arguments(parser.add_argument_group(description="Task related"))

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
