"""Classification metrics for frozen probes and the continual-learning summary numbers.

``classification_metrics`` gives accuracy, macro-F1 and per-class counts;
``adaptation_gain`` and ``relative_forgetting`` are the two numbers of the evaluation
protocol in DESIGN.md (A[i][j] = accuracy on task j after stage i).
"""

from dataclasses import asdict, dataclass
from typing import Dict, List, Sequence

import numpy as np


@dataclass
class ClassMetrics:
    """Scores of one class on an evaluation split."""

    n: int
    """Items of this class in the split (support)."""
    n_predicted: int
    """Items the model assigned to this class."""
    correct: int
    """True positives."""
    precision: float
    recall: float
    """Also this class's accuracy."""
    f1: float


@dataclass
class ClassificationMetrics:
    """Scores of a classifier on one split."""

    accuracy: float
    macro_f1: float
    """Unweighted mean F1 over the classes present in the true or predicted labels."""
    n: int
    per_class: Dict[str, ClassMetrics]
    """Keyed by class name, for every class of ``class_names``."""
    confusion: List[List[int]]
    """``confusion[i][j]``: items of class i predicted as class j (``class_names`` order)."""

    def to_dict(self) -> dict:
        return asdict(self)


def classification_metrics(
    y_true: Sequence[int], y_pred: Sequence[int], class_names: Sequence[str]
) -> ClassificationMetrics:
    """Accuracy, macro-F1, per-class scores and the confusion matrix.

    Args:
        y_true: [n] class indices into ``class_names``.
        y_pred: [n] class indices into ``class_names``.
        class_names: [C] names; every index must be below C.

    Macro-F1 averages over the classes that occur in ``y_true`` or ``y_pred`` (as
    scikit-learn does), so classes absent from a small test split do not count as 0.
    """
    t = np.asarray(y_true, dtype=np.int64).reshape(-1)
    p = np.asarray(y_pred, dtype=np.int64).reshape(-1)
    num_classes = len(class_names)
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} items but y_pred has {p.size}")
    if t.size == 0:
        raise ValueError("cannot score an empty split")
    for name, arr in (("y_true", t), ("y_pred", p)):
        if arr.min() < 0 or arr.max() >= num_classes:
            raise ValueError(f"{name} holds indices outside [0, {num_classes}) of class_names")
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (t, p), 1)
    per_class: Dict[str, ClassMetrics] = {}
    f1s = []
    for c, name in enumerate(class_names):
        tp = int(confusion[c, c])
        support = int(confusion[c].sum())
        predicted = int(confusion[:, c].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = ClassMetrics(support, predicted, tp, precision, recall, f1)
        if support or predicted:
            f1s.append(f1)
    return ClassificationMetrics(
        accuracy=float((t == p).mean()),
        macro_f1=float(np.mean(f1s)),
        n=int(t.size),
        per_class=per_class,
        confusion=confusion.tolist(),
    )


def adaptation_gain(acc_before: float, acc_after: float) -> float:
    """Gain on a new domain: ``A[k][new] - A[0][new]`` (absolute accuracy points)."""
    return acc_after - acc_before


def relative_forgetting(acc_before: float, acc_after: float) -> float:
    """Forgetting on an old task: ``(A[0][old] - A[K][old]) / A[0][old]``.

    Positive means the old task got worse; 0.735 means 73.5% of the accuracy was lost.
    """
    if acc_before <= 0:
        raise ValueError(f"relative forgetting needs a positive starting score, got {acc_before}")
    return (acc_before - acc_after) / acc_before
