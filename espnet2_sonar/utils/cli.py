"""Small command-line helpers shared by the entry points under ``espnet2_sonar.bin``."""

import logging
import sys
from typing import Dict


class TqdmLoggingHandler(logging.StreamHandler):
    """Log lines written through ``tqdm.write``, so they do not break the progress bars."""

    def emit(self, record):
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # pragma: no cover - logging must not raise
            self.handleError(record)


def log_through_tqdm(fmt: str = "%(levelname)s %(message)s", level: int = logging.INFO) -> None:
    """Route the root logger through :class:`TqdmLoggingHandler` (replacing its handlers)."""
    handler = TqdmLoggingHandler()
    handler.setFormatter(logging.Formatter(fmt))
    logging.basicConfig(level=level, handlers=[handler], force=True)


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
