"""StrictConfig: the one implementation of dict <-> dataclass config conversion.

Every typed config in the toolkit is a dataclass that mixes this in, so "unknown config
keys are errors" (STYLE.md rule 2) is enforced in one place with one message format.
"""

from dataclasses import asdict, fields
from typing import Any, Dict, Mapping, Optional, Type, TypeVar

T = TypeVar("T", bound="StrictConfig")


class StrictConfig:
    """Mixin for ``@dataclass`` configs: ``from_dict`` rejects unknown keys, naming them."""

    @classmethod
    def from_dict(cls: Type[T], d: Optional[Mapping[str, Any]] = None) -> T:
        """Build from a dict (None = defaults); unknown keys raise ``ValueError`` naming them."""
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} key(s): {unknown}; known: {sorted(known)}")
        return cls(**d)

    def to_dict(self) -> Dict[str, Any]:
        """All fields as a plain dict (YAML/JSON ready)."""
        return asdict(self)
