"""The one strict state-dict comparison: which keys are missing, unexpected or mis-shaped."""

from dataclasses import dataclass
from typing import List, Mapping

from torch import Tensor


@dataclass
class StateDiff:
    """How a state dict ``got`` differs from the ``expected`` one (empty lists = a strict match)."""

    missing: List[str]
    """Keys of ``expected`` absent from ``got``, sorted."""
    unexpected: List[str]
    """Keys of ``got`` absent from ``expected``, sorted."""
    mismatched: List[str]
    """Keys of both whose tensor shapes differ, in ``expected``'s order."""

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.mismatched)


def state_diff(expected: Mapping[str, Tensor], got: Mapping[str, Tensor]) -> StateDiff:
    """Compare ``got`` with ``expected`` key by key and shape by shape (values are not read)."""
    return StateDiff(
        missing=sorted(set(expected) - set(got)),
        unexpected=sorted(set(got) - set(expected)),
        mismatched=[k for k in expected if k in got and tuple(got[k].shape) != tuple(expected[k].shape)],
    )
