"""Continual-learning methods as configs: naive, analytic, analytic_fsa, pace, joint.

Every method is one ``MethodConfig``; the named ones differ only in the fields below.

=============  ==========  ==========  ==========  ============
method         classifier  adaptation  projection  perturbation
=============  ==========  ==========  ==========  ============
naive          linear      none        -           -
analytic       analytic    none        -           -
analytic_fsa   analytic    first       -           -
pace           analytic    multi       yes         yes
joint          analytic    joint       -           -
=============  ==========  ==========  ==========  ============

adaptation: ``none`` frozen backbone; ``first`` LoRA on the first session only (FSA);
``multi`` a new LoRA session per session until ``n_stop`` training samples have been seen
(then the backbone is frozen and only the classifier updates); ``joint`` one adaptation on
all sessions' data at once (the upper bound; its classifier is fitted on all data and
scored after session t over the classes seen by then).

``method_config(name, overrides)`` builds a named method with nested overrides
(``{"adapt": {"epochs": 3}, "analytic": {"proj_dim": 512}}``); unknown keys raise errors
naming the key.
"""

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from espnet2_sonar.pace.adapt import AdaptConfig
from espnet2_sonar.pace.analytic import AnalyticConfig
from espnet2_sonar.pace.benchmarks import BenchmarkConfig
from espnet2_sonar.pace.classifiers import LinearConfig
from espnet2_sonar.pace.lora import LoRAConfig
from espnet2_sonar.pace.perturb import PerturbConfig
from espnet2_sonar.pace.projection import ProjectionConfig
from espnet2_sonar.utils.config import StrictConfig
from espnet2_sonar.utils.precision import PRECISIONS

CLASSIFIERS = ("linear", "analytic")
ADAPTATIONS = ("none", "first", "multi", "joint")


@dataclass
class MethodConfig(StrictConfig):
    """One continual-learning method on a backbone (see module docstring)."""

    name: str = "custom"
    classifier: str = "analytic"
    """``linear`` (naive sequential fine-tuning) or ``analytic``."""
    adaptation: str = "none"
    """``none``, ``first``, ``multi`` or ``joint``."""
    projection: bool = False
    """Project LoRA updates off the protected subspace (``multi``)."""
    perturbation: bool = False
    """Boundary-aware perturbations + hinge regulariser during adaptation."""
    n_stop: Optional[int] = 2000
    """``multi``: sessions start adapting only while fewer training samples than this have
    been used for adaptation (None: every session adapts)."""
    layer: int = -1
    """Pooled hidden state (index into the encoder's L + 1 outputs; -1 = last)."""
    max_seconds: float = 10.0
    """Clips are cut to their first max_seconds."""
    batch_size: int = 16
    """Clips per encoder call when extracting features."""
    precision: str = "fp32"
    """Precision of the frozen feature extraction (``utils.precision``: fp32, bf16, fp16); the
    fbank, the classifiers and the LoRA adaptation stay fp32."""
    benchmark: BenchmarkConfig = field(default_factory=BenchmarkConfig)
    linear: LinearConfig = field(default_factory=LinearConfig)
    analytic: AnalyticConfig = field(default_factory=AnalyticConfig)
    adapt: AdaptConfig = field(default_factory=AdaptConfig)
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    subspace: ProjectionConfig = field(default_factory=ProjectionConfig)
    perturb: PerturbConfig = field(default_factory=PerturbConfig)

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.classifier not in CLASSIFIERS:
            raise ValueError(f"classifier must be one of {CLASSIFIERS}, got {self.classifier!r}")
        if self.adaptation not in ADAPTATIONS:
            raise ValueError(f"adaptation must be one of {ADAPTATIONS}, got {self.adaptation!r}")
        if (self.projection or self.perturbation) and self.adaptation == "none":
            raise ValueError(f"method {self.name!r}: projection/perturbation need an adaptation")


METHODS: Dict[str, Dict[str, Any]] = {
    "naive": dict(classifier="linear", adaptation="none"),
    "analytic": dict(classifier="analytic", adaptation="none"),
    "analytic_fsa": dict(classifier="analytic", adaptation="first"),
    "pace": dict(classifier="analytic", adaptation="multi", projection=True, perturbation=True),
    "joint": dict(classifier="analytic", adaptation="joint"),
}
"""Named methods: field overrides of ``MethodConfig``."""


def _build(cls, values: Dict[str, Any], where: str):
    """Instantiate ``StrictConfig`` ``cls`` from ``values``, recursing into nested config fields."""
    if not isinstance(values, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(values).__name__}")
    cls.check_keys(values, where)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        sub = fields[key].default_factory if fields[key].default_factory is not dataclasses.MISSING else None
        if sub is not None and dataclasses.is_dataclass(sub):
            kwargs[key] = _build(sub, value, f"{where}.{key}")
        else:
            kwargs[key] = value
    return cls(**kwargs)


def _merge(base: Dict[str, Any], over: Dict[str, Any]) -> Dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def method_config(name: str, overrides: Optional[Dict[str, Any]] = None) -> MethodConfig:
    """The named method with nested ``overrides`` (unknown keys raise ``ValueError``)."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; known: {sorted(METHODS)}")
    values = _merge(dict(METHODS[name], name=name), overrides or {})
    return _build(MethodConfig, values, f"method {name!r}")
