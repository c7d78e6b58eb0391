"""Model-agnostic tensor helpers shared by every model family: masks, pooling, state-dict checks,
the seeded SpecAugment, the length-aware CNN blocks (``conv``), and the ``FrozenExtractor``
interface the families' encoders implement.

Layer 1 of the package (above ``utils``/``data``, below the model families): modules here
import only torch, numpy, faiss, espnet and ``espnet2_sonar.utils``.
"""
