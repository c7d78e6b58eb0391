"""Class-incremental metrics: average accuracy, last-session accuracy, average forgetting.

With T sessions, ``A_t`` is the accuracy after session t on the test items of every class
seen so far (sessions 0..t), and ``a[t][s]`` the accuracy after session t on the test items
of session s's classes (s <= t), both predicting over all seen classes.

    average accuracy    = mean_t A_t
    last accuracy       = A_{T-1}
    average forgetting  = mean_{s < T-1} ( max_{s <= t < T-1} a[t][s] - a[T-1][s] )   (0 if T = 1)
"""

from dataclasses import asdict, dataclass
from typing import List, Sequence

from torch import Tensor


@dataclass
class ContinualMetrics:
    """Summary of one run."""

    average_accuracy: float
    last_accuracy: float
    average_forgetting: float
    session_accuracy: List[float]
    """A_t for t = 0..T-1."""
    accuracy_matrix: List[List[float]]
    """a[t][s] for s <= t (row t has t + 1 entries)."""

    def to_dict(self) -> dict:
        return asdict(self)


def session_scores(pred: Tensor, labels: Tensor, offsets: Sequence[int], t: int) -> "tuple[float, List[float]]":
    """(A_t, [a[t][s] for s <= t]) from predictions and labels [n] of the seen test items."""
    acc = float((pred == labels).float().mean()) if labels.numel() else 0.0
    row = []
    for s in range(t + 1):
        m = (labels >= offsets[s]) & (labels < offsets[s + 1])
        row.append(float((pred[m] == labels[m]).float().mean()) if bool(m.any()) else 0.0)
    return acc, row


def continual_metrics(session_accuracy: Sequence[float], matrix: Sequence[Sequence[float]]) -> ContinualMetrics:
    """Summary numbers from A_t [T] and the lower-triangular a[t][s] (see module docstring)."""
    num = len(session_accuracy)
    if num == 0 or len(matrix) != num or any(len(row) != t + 1 for t, row in enumerate(matrix)):
        raise ValueError("need T session accuracies and a lower-triangular T x T accuracy matrix")
    forgetting = []
    for s in range(num - 1):
        best = max(matrix[t][s] for t in range(s, num - 1))
        forgetting.append(best - matrix[num - 1][s])
    return ContinualMetrics(
        average_accuracy=float(sum(session_accuracy) / num),
        last_accuracy=float(session_accuracy[-1]),
        average_forgetting=float(sum(forgetting) / len(forgetting)) if forgetting else 0.0,
        session_accuracy=[float(a) for a in session_accuracy],
        accuracy_matrix=[[float(v) for v in row] for row in matrix],
    )
