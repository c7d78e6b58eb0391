"""TeacherDistillTask: base pre-training of a BEATs encoder from a frozen frame teacher.

    --teacher ge2e                  a teacher of ``espnet2_sonar.teachers.TEACHERS``
    --encoder beats --encoder_conf {arch: tiny, init: null, config: {}}
    --model_conf {student_layer: -1, teacher_layer: -1}   (FrameRegressionConfig)

Data as in SonarTask (``speech``; an ``is_replay`` list is accepted and ignored). Export with ``bin/sonar_export`` (the encoder only).
"""

import argparse

from espnet2_sonar.utils.amp_trainer import AmpTrainer

from espnet2_sonar.distill.frame_regression import FrameRegressionConfig, FrameRegressionModel
from espnet2_sonar.tasks.audio_task import AudioTask
from espnet2_sonar.tasks.sonar import encoder_choices
from espnet2_sonar.teachers import TEACHERS, load_teacher


class TeacherDistillTask(AudioTask):
    num_optimizers: int = 1
    class_choices_list = [encoder_choices]
    trainer = AmpTrainer  # ESPnet Trainer; --use_amp also on the CPU (bf16)

    model_config_class = FrameRegressionConfig
    model_conf_help = "FrameRegressionConfig: student_layer, teacher_layer (unknown keys are errors)"

    @classmethod
    def add_task_arguments(cls, parser: argparse.ArgumentParser):
        group = parser.add_argument_group(description="Teacher distillation related")
        group.add_argument("--teacher", default="ge2e", choices=sorted(TEACHERS),
                           help="frozen frame teacher whose weights ship in a package")
        cls.add_model_arguments(group)

    @classmethod
    def optional_data_names(cls, train: bool = True, inference: bool = False):
        return ("is_replay",)  # the recipe's lists carry it; regression treats every clip alike

    @classmethod
    def build_model(cls, args: argparse.Namespace) -> FrameRegressionModel:
        config = FrameRegressionConfig.from_dict(args.model_conf)
        encoder = encoder_choices.get_class(args.encoder)(**args.encoder_conf)
        return FrameRegressionModel(encoder, load_teacher(args.teacher), config)
