"""What a continual-learning report covers (``ReportSpec``) and the probe scores it reads.

Shared by ``eval.report`` (which builds the results) and ``eval.verdict`` (which judges them).
"""

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple


@dataclass
class ReportSpec:
    """What the report covers; the same lists the recipe passes to its stages."""

    methods: List[str]
    """Continual methods, e.g. ``["sonar", "dcp"]``."""
    domains: List[str]
    """Adapted domains in stage order: ``domains[k - 1]`` is learned at stage k."""
    tasks: List[str]
    """Probe tasks (columns of the accuracy matrix)."""
    task_domain: Dict[str, str]
    """Domain of each task; tasks whose domain is not in ``domains`` are the old tasks. The corpus's
    map comes from its recipe (run.sh's ``task_domain``, passed as ``--task_domain``)."""
    seeds: Optional[List[int]] = None
    """Expected probe seeds; None: every seed found on disk."""
    stage0: Dict[str, str] = field(default_factory=dict)
    """Probe-result name of stage 0 per method, for a method whose continual chain does not start
    from the shared ``base`` (DECAR: its own pre-training on the prior pool, ``decar/prior``;
    under a training run it is prefixed like the other stages, ``tseed<T>/decar/prior``)."""
    train_seeds: Optional[List[int]] = None
    """Training seeds of the continual methods (one run each, ``tseed<T>/`` names); None: one
    training run with unprefixed names, probe seeds as replicates."""

    def __post_init__(self):
        for name in ("methods", "domains", "tasks"):
            values = getattr(self, name)
            if not values:
                raise ValueError(f"ReportSpec.{name} is empty")
            if len(set(values)) != len(values):
                raise ValueError(f"ReportSpec.{name} has duplicates: {values}")
        if self.train_seeds is not None and (not self.train_seeds or len(set(self.train_seeds)) != len(self.train_seeds)):
            raise ValueError(f"ReportSpec.train_seeds must be distinct and non-empty: {self.train_seeds}")
        if "base" in self.methods:
            raise ValueError("'base' is stage 0 of every method, not a method")
        unmapped = [t for t in self.tasks if t not in self.task_domain]
        if unmapped:
            raise ValueError(f"no domain for task(s) {unmapped}; give them in --task_domain task=domain,...")

    @property
    def old_tasks(self) -> List[str]:
        return [t for t in self.tasks if self.task_domain[t] not in self.domains]

    def new_tasks(self, domain: str) -> List[str]:
        return [t for t in self.tasks if self.task_domain[t] == domain]

    @property
    def runs(self) -> List[Optional[int]]:
        """Training seeds of the runs, ``[None]`` for the one unprefixed run."""
        return list(self.train_seeds) if self.train_seeds is not None else [None]

    @staticmethod
    def run_prefix(train_seed: Optional[int]) -> str:
        return "" if train_seed is None else f"tseed{train_seed}/"

    def stage_names(self, method: str, train_seed: Optional[int] = None) -> List[str]:
        """Probe-result names of stages 0..K of ``method`` in the run of ``train_seed``."""
        prefix = self.run_prefix(train_seed)
        first = prefix + self.stage0[method] if method in self.stage0 else "base"
        return [first] + [f"{prefix}{method}/{d}" for d in self.domains]

    def all_stage_names(self, method: str) -> List[str]:
        """Stage names of ``method`` over every training run, stage 0 (shared ``base``) once."""
        return list(dict.fromkeys(n for t in self.runs for n in self.stage_names(method, t)))


@dataclass
class ProbeScore:
    accuracy: float
    macro_f1: float
    chance: float = math.nan
    """Majority-class share of the test set (from the result's ``per_class`` counts), NaN if absent."""
    precision: str = "fp32"
    """Precision of the encoder forward that made the embeddings (results without one: fp32)."""


@dataclass
class ProbeResults:
    """The probe results found under an eval dir."""

    scores: Dict[Tuple[str, str, int], ProbeScore]
    """Keyed by (name, task, seed)."""
    seeds: List[int]
    missing: List[str]
    """Expected result files that are absent, relative to the eval dir."""
