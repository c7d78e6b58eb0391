"""TokenizerTask: distil a BEATs tokenizer from a frozen BEATs encoder (ESPnet task).

    --tokenizer_conf {arch: tiny, teacher: exp/base/iter1/encoder.pt, config: {...}}
    --tokenizer_train_conf {commitment_weight: 1.0}

``config`` overrides the ``arch`` tokenizer's ``BeatsTokenizerConfig``, nested (canonical;
encoder fields field by field)::

    config: {estimator_layers: 1, encoder: {dropout: 0.0}}

or in the flat official-cfg layout (``config: {estimator_layers: 1, dropout: 0.0}``), which
``BeatsTokenizerConfig.nest`` maps to the nested form; a dict mixing both forms, or an unknown
key in either, is an error naming the key.

Data as in SonarTask (``speech``, optional ``is_replay``).
"""

import argparse

from espnet2.utils.nested_dict_action import NestedDictAction

from espnet2_sonar.sonar.tokenizer_train_model import TokenizerTrainModel
from espnet2_sonar.tasks.sonar import SonarTask
from espnet2_sonar.utils.config import reject_unknown_keys

_TRAIN_KEYS = {"commitment_weight"}
_TOKENIZER_KEYS = {"arch", "teacher", "config"}


class TokenizerTask(SonarTask):  # SonarTask for the data side (speech + is_replay)
    class_choices_list = []

    @classmethod
    def add_task_arguments(cls, parser: argparse.ArgumentParser):
        group = parser.add_argument_group(description="Tokenizer task related")
        group.add_argument(
            "--tokenizer_conf",
            action=NestedDictAction,
            default=dict(arch="tiny", teacher=None, config={}),
            help="arch (tiny|small|base), teacher (BEATs encoder checkpoint, any format, or hf:// spec), "
            "config (BeatsTokenizerConfig overrides: nested {encoder: {...}, ...} or flat official cfg keys)",
        )
        group.add_argument(
            "--tokenizer_train_conf",
            action=NestedDictAction,
            default=dict(commitment_weight=1.0),
            help="commitment_weight",
        )
        cls.add_crop_argument(group)

    @classmethod
    def build_model(cls, args: argparse.Namespace) -> TokenizerTrainModel:
        from espnet2_sonar.beats.formats import load_beats_encoder
        from espnet2_sonar.tokenizer.tokenizer import BeatsTokenizer, BeatsTokenizerConfig

        for name, conf, known in (("tokenizer_conf", args.tokenizer_conf, _TOKENIZER_KEYS),
                                  ("tokenizer_train_conf", args.tokenizer_train_conf, _TRAIN_KEYS)):
            reject_unknown_keys(conf, known, f"--{name}")
        teacher_path = args.tokenizer_conf.get("teacher")
        if not teacher_path:
            raise ValueError("--tokenizer_conf teacher=PATH (a BEATs encoder checkpoint or hf:// spec) is required")
        teacher = load_beats_encoder(teacher_path)  # any BEATs format, file or Hugging Face spec
        overrides = BeatsTokenizerConfig.nest(args.tokenizer_conf.get("config") or {})
        overrides.setdefault("target_dim", teacher.output_size())
        # the tokenizer reads the same fbank as its teacher (an ESPnet base: ESPnet's statistics)
        overrides["encoder"].setdefault("fbank_mean", teacher.config.fbank_mean)
        overrides["encoder"].setdefault("fbank_std", teacher.config.fbank_std)
        config = BeatsTokenizerConfig.named(args.tokenizer_conf.get("arch", "tiny"), **overrides)
        tokenizer = BeatsTokenizer(config)
        return TokenizerTrainModel(tokenizer, teacher, **args.tokenizer_train_conf)
