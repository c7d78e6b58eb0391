"""Shared test setup. The tree under ``tests/`` mirrors the package: ``tests/<sub-package>/``
tests ``espnet2_sonar/<sub-package>/``, ``tests/egs2/`` the recipes, and the two tests at this
level hold the whole repository to its rules (``test_layers.py``: imports follow the layer
order, and this tree mirrors the package; ``test_docs.py``: links and named files).

Data makers shared by several test modules live in ``tests/fixtures/`` (``sonar_fixtures``,
``decar_fixtures``, ``ssondo_fixtures``, ``report_fixtures``, ``audio_fixtures``, ``encoder_fixtures``),
which this file puts on ``sys.path``; the pytest
fixtures that more than one test module uses are defined here.
"""

import sys
from pathlib import Path

import pytest
import torch

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS / "fixtures"))


@pytest.fixture(scope="session")
def tiny_encoder_ckpt(tmp_path_factory) -> Path:
    """A randomly initialised tiny BEATs encoder (torch seed 0, eval mode) in the official
    ``{'cfg', 'model'}`` format; the global RNG state is left as it was."""
    from espnet2_sonar.beats.config import BeatsConfig
    from espnet2_sonar.beats.encoder import BeatsEncoder
    from espnet2_sonar.beats.interop import save_official

    with torch.random.fork_rng():
        torch.manual_seed(0)
        encoder = BeatsEncoder(BeatsConfig.named("tiny")).eval()
    return save_official(encoder, tmp_path_factory.mktemp("tiny_encoder") / "tiny.pt")


@pytest.fixture
def offline_hub(tmp_path, monkeypatch) -> Path:
    """An empty Hugging Face Hub cache for this test, with the Hub set offline (no network)."""
    cache = tmp_path / "hf_cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache
