"""``nn.frozen_extractor.FrozenExtractor``: every encoder evaluation loads is one, and the ABC
refuses a class that leaves a method out; the BEATs encoders' declared ``CONF_KEYS`` (what
``eval.checkpoints`` reads an ``encoder_conf`` by) match their constructors."""

import inspect
import typing

import pytest
import torch

from espnet2_sonar.nn.frozen_extractor import FrozenExtractor
from sonar_fixtures import random_official_encoder


def test_every_registered_kind_loader_returns_a_frozen_extractor():
    from espnet2_sonar.eval.checkpoints import KIND_LOADERS

    assert {"decar_efficientnet", "ssondo_student", "logmel_stats", "frame_teacher"} <= set(KIND_LOADERS)
    for kind, loader in KIND_LOADERS.items():
        returned = typing.get_type_hints(loader)["return"]
        assert inspect.isclass(returned) and issubclass(returned, FrozenExtractor), (kind, returned)


def test_loaded_encoders_are_frozen_extractors(tmp_path):
    from espnet2_sonar.beats.encoder_choice import SonarBeatsEncoder
    from espnet2_sonar.efficientnet.interop import efficientnet_checkpoint
    from espnet2_sonar.efficientnet.model import EfficientNetEncoder
    from espnet2_sonar.eval.checkpoints import load_encoder
    from espnet2_sonar.eval.logmel_floor import logmel_checkpoint

    torch.save(efficientnet_checkpoint(EfficientNetEncoder("tiny")), tmp_path / "cnn.pt")
    torch.save(logmel_checkpoint(), tmp_path / "floor.pt")
    paths = [random_official_encoder(tmp_path / "beats.pt"), tmp_path / "cnn.pt", tmp_path / "floor.pt"]
    for path in paths:
        assert isinstance(load_encoder(path), FrozenExtractor), path
    assert issubclass(SonarBeatsEncoder, FrozenExtractor)


def test_a_class_missing_a_method_cannot_be_instantiated():
    class NoLengths(torch.nn.Module, FrozenExtractor):
        def extract_layers(self, wavs, lengths):
            return [wavs[..., None]]

    with pytest.raises(TypeError, match="patch_lengths"):
        NoLengths()

    class Both(NoLengths):
        def patch_lengths(self, lengths):
            return lengths

    assert isinstance(Both(), FrozenExtractor)


def test_declared_encoder_conf_keys_are_the_constructor_arguments():
    """``eval.checkpoints`` reads an ``encoder_conf`` by ``CONF_KEYS``; they must not drift."""
    from espnet2_sonar.beats.encoder import BeatsEncoder
    from espnet2_sonar.beats.encoder_choice import SonarBeatsEncoder

    for cls in (BeatsEncoder, SonarBeatsEncoder):
        assert set(cls.CONF_KEYS) == set(inspect.signature(cls.__init__).parameters) - {"self"}, cls
