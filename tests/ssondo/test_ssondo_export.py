"""Which model file ``ssondo.export`` takes from an experiment dir."""

import pytest

from espnet2_sonar.ssondo.export import _model_file


def test_the_best_then_latest_then_the_highest_epoch_is_taken(tmp_path):
    with pytest.raises(FileNotFoundError, match="no trained model"):
        _model_file(tmp_path)
    for name in ("2epoch.pth", "9epoch.pth", "10epoch.pth"):
        (tmp_path / name).write_bytes(b"")
    assert _model_file(tmp_path).name == "10epoch.pth"  # not 9epoch.pth, which sorts last as text
    (tmp_path / "latest.pth").write_bytes(b"")
    assert _model_file(tmp_path).name == "latest.pth"
    (tmp_path / "valid.loss.best.pth").write_bytes(b"")
    assert _model_file(tmp_path).name == "valid.loss.best.pth"
