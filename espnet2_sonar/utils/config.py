"""StrictConfig: the one implementation of dict <-> dataclass config conversion.

Every typed config in the toolkit is a dataclass that mixes this in, so "unknown config
keys are errors" (STYLE.md rule 2) is enforced in one place with one message format;
``reject_unknown_keys`` is that check for the few plain-dict sections that have no dataclass.
"""

from dataclasses import asdict, fields
from typing import Any, Dict, Iterable, Mapping, Optional, Type, TypeVar

T = TypeVar("T", bound="StrictConfig")


def reject_unknown_keys(d: Mapping[str, Any], known: Iterable[str], what: str, where: str = "") -> None:
    """Raise ``ValueError`` naming the keys of ``d`` not in ``known``.

    The message is ``[where: ]unknown {what} key(s): [...]; known: [...]``.
    """
    known = set(known)
    unknown = sorted(set(d) - known)
    if unknown:
        prefix = f"{where}: " if where else ""
        raise ValueError(f"{prefix}unknown {what} key(s): {unknown}; known: {sorted(known)}")


class StrictConfig:
    """Mixin for ``@dataclass`` configs: ``from_dict`` rejects unknown keys, naming them."""

    @classmethod
    def check_keys(cls, d: Mapping[str, Any], where: str = "") -> None:
        """Raise ``ValueError`` naming the keys of ``d`` that are not fields of ``cls``."""
        reject_unknown_keys(d, (f.name for f in fields(cls)), cls.__name__, where)

    @classmethod
    def from_dict(cls: Type[T], d: Optional[Mapping[str, Any]] = None) -> T:
        """Build from a dict (None = defaults); unknown keys raise ``ValueError`` naming them."""
        d = dict(d or {})
        cls.check_keys(d)
        return cls(**d)

    def to_dict(self) -> Dict[str, Any]:
        """All fields as a plain dict (YAML/JSON ready)."""
        return asdict(self)
