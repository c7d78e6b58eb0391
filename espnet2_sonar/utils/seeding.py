"""Stable derivation of per-purpose seeds from a base seed.

Every seeded draw that depends on more than the run's base seed (a training step, an
epoch, a DDP rank, an expansion count) gets its seed from :func:`derive_seed` with a
purpose label unique to its call site, e.g. ``derive_seed(seed, "sonar.mask", step, rank)``.
Distinct labels give independent streams, so two purposes never replay each other's
draws (as ad-hoc formulas such as ``seed * 1_000_003 + step`` could, and did for
different sites sharing the same multiplier).

The mix is BLAKE2b over a canonical, type-tagged and length-prefixed encoding of the
inputs, not Python's ``hash()`` (which is salted per process for strings), so the value
is the same in every process, on every platform and Python version.
"""

import hashlib
import numbers

_DOMAIN = b"espnet2_sonar.derive_seed.v1"
SEED_BOUND = 2**31
"""Derived seeds lie in ``[0, SEED_BOUND)``: valid for ``torch.Generator.manual_seed``,
``numpy.random.default_rng`` and faiss (a signed 32-bit int)."""


def _encode(value: int | str, what: str) -> bytes:
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, str)):
        raise TypeError(f"{what} must be an int or a str, got {type(value).__name__} ({value!r})")
    if isinstance(value, str):
        tag, payload = b"s", value.encode("utf-8")
    else:
        tag, payload = b"i", str(int(value)).encode("ascii")
    return tag + len(payload).to_bytes(8, "big") + payload


def derive_seed(seed: int, *parts: int | str) -> int:
    """Mix a base ``seed`` with labelled ``parts`` into a seed in ``[0, 2**31)``.

    Args:
        seed: the base seed (any int, negative allowed; not a bool).
        parts: ints and strs, usually a purpose label first (``"decar.kmeans"``) and then
            the counters the draw depends on (``epoch``). Order, type and value all
            matter: ``(1, "2")``, ``("1", 2)`` and ``(2, 1)`` give different seeds.

    Returns:
        A non-negative int below ``2**31``, identical across processes and platforms.

    Raises:
        TypeError: ``seed`` is not an int, or a part is neither an int nor a str.
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int, got {type(seed).__name__} ({seed!r})")
    h = hashlib.blake2b(_DOMAIN, digest_size=8)
    h.update(_encode(seed, "seed"))
    for i, part in enumerate(parts):
        h.update(_encode(part, f"seed part {i}"))
    return int.from_bytes(h.digest(), "big") % SEED_BOUND
