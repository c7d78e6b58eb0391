"""Method configs (named methods, nested overrides, unknown keys) and continual metrics."""

import pytest
import torch

from espnet2_sonar.pace.methods import METHODS, method_config
from espnet2_sonar.pace.metrics import continual_metrics, session_scores


@pytest.mark.timeout(30)
def test_named_methods_and_overrides():
    assert set(METHODS) == {"naive", "analytic", "analytic_fsa", "pace", "joint"}
    naive = method_config("naive")
    assert naive.classifier == "linear" and naive.adaptation == "none" and naive.name == "naive"
    pace = method_config("pace", {"adapt": {"epochs": 3}, "lora": {"targets": ["fc1"]}, "n_stop": None})
    assert pace.projection and pace.perturbation and pace.adaptation == "multi"
    assert pace.adapt.epochs == 3 and pace.adapt.batch_size == 16  # untouched defaults stay
    assert pace.lora.targets == ("fc1",) and pace.n_stop is None
    fsa = method_config("analytic_fsa", {"benchmark": {"num_sessions": 2}})
    assert fsa.benchmark.num_sessions == 2 and fsa.adaptation == "first" and not fsa.projection


@pytest.mark.timeout(30)
def test_unknown_keys_and_bad_values_raise():
    with pytest.raises(ValueError, match=r"method 'pace'\.adapt: unknown AdaptConfig key\(s\): \['epoch'\]"):
        method_config("pace", {"adapt": {"epoch": 3}})
    with pytest.raises(ValueError, match=r"method 'naive': unknown MethodConfig key\(s\): \['foo'\]"):
        method_config("naive", {"foo": 1})
    with pytest.raises(ValueError, match="unknown method"):
        method_config("ewc")
    with pytest.raises(ValueError, match="need an adaptation"):
        method_config("analytic", {"projection": True})
    with pytest.raises(ValueError, match="LoRA target"):
        method_config("pace", {"lora": {"targets": ["k_proj"]}})


@pytest.mark.timeout(30)
def test_continual_metrics():
    acc = [1.0, 0.6, 0.5]
    matrix = [[1.0], [0.4, 0.8], [0.2, 0.6, 0.7]]
    m = continual_metrics(acc, matrix)
    assert m.average_accuracy == pytest.approx(0.7)
    assert m.last_accuracy == 0.5
    # session 0: best 1.0 -> 0.2; session 1: best 0.8 -> 0.6
    assert m.average_forgetting == pytest.approx((0.8 + 0.2) / 2)
    assert continual_metrics([0.9], [[0.9]]).average_forgetting == 0.0
    with pytest.raises(ValueError):
        continual_metrics([0.9, 0.8], [[0.9], [0.8]])


@pytest.mark.timeout(30)
def test_session_scores():
    labels = torch.tensor([0, 0, 1, 2, 2, 3])
    pred = torch.tensor([0, 1, 1, 2, 0, 3])
    acc, row = session_scores(pred, labels, [0, 2, 4], t=1)
    assert acc == pytest.approx(4 / 6)
    assert row == pytest.approx([2 / 3, 2 / 3])
