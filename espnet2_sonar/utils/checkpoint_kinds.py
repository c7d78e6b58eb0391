"""The one checkpoint-kind registry: ``ckpt['kind']`` -> the loader of that encoder family.

A self-describing checkpoint is a dict with a ``kind`` key. Each family registers its loader
where it defines it, when its module is imported (``efficientnet.interop``, ``students.file``,
``teachers.registry``, ``eval.logmel_floor``); ``eval.checkpoints`` imports those modules and
dispatches through :data:`CHECKPOINT_KINDS`. A loader takes ``(ckpt, source)`` and returns an
encoder with the frozen-evaluation interface (``extract_layers``, ``patch_lengths``).
"""

from typing import Callable, Dict, TypeVar

F = TypeVar("F", bound=Callable)

CHECKPOINT_KINDS: Dict[str, Callable] = {}
"""``kind`` -> ``loader(ckpt: Mapping, source: str) -> encoder``."""


def register_checkpoint_kind(kind: str) -> Callable[[F], F]:
    """Decorator: register the decorated function as the loader of ``kind`` (returned unchanged).

    A kind belongs to one loader: registering a different function under a taken kind raises
    ``ValueError`` naming both.
    """

    def register(loader: F) -> F:
        old = CHECKPOINT_KINDS.get(kind)
        if old is not None and (old.__module__, old.__qualname__) != (loader.__module__, loader.__qualname__):
            raise ValueError(
                f"checkpoint kind {kind!r} is already registered to {old.__module__}.{old.__qualname__}, "
                f"not {loader.__module__}.{loader.__qualname__}"
            )
        CHECKPOINT_KINDS[kind] = loader
        return loader

    return register
