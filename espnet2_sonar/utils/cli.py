"""Small command-line helpers shared by the entry points under ``espnet2_sonar.bin``."""

from typing import Dict


def name_path_pairs(text: str, what: str) -> Dict[str, str]:
    """``"a=x b=y"`` -> ``{"a": "x", "b": "y"}`` (order kept); ``ValueError`` naming ``what``
    for an entry without ``=``, an empty side, a repeated name or an empty list."""
    pairs: Dict[str, str] = {}
    for item in text.split():
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"{what} entries are NAME=PATH, got {item!r}")
        if name in pairs:
            raise ValueError(f"{what}: name {name!r} given twice")
        pairs[name] = path
    if not pairs:
        raise ValueError(f"{what}: nothing given")
    return pairs
