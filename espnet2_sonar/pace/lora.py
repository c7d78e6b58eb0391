"""Per-session LoRA adapters on the BeatsEncoder's attention and feed-forward linears.

A ``LoRALinear`` wraps a frozen ``nn.Linear`` W and holds one low-rank pair per session:

    y = x W^T + b + sum_s (alpha / r) (x A_s^T) B_s^T,     A_s [r, in], B_s [out, r]

``add_session_`` freezes every existing pair and appends a new one (A random from the passed
generator, B zero, so the new session starts as the identity change). ``merged_weight`` is
W + sum_s (alpha / r) B_s A_s; ``merge_`` folds it into W and drops the adapters.

Targets in a ``BeatsLayer``: ``self_attn.qkv_proj`` (q, k, v stacked), ``self_attn.out_proj``,
``fc1``, ``fc2`` (names as in ``LoRAConfig.targets``).
"""

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from espnet2_sonar.utils.config import StrictConfig

TARGET_PATHS = {
    "qkv_proj": ("self_attn", "qkv_proj"),
    "out_proj": ("self_attn", "out_proj"),
    "fc1": ("fc1",),
    "fc2": ("fc2",),
}


@dataclass
class LoRAConfig(StrictConfig):
    """LoRA adapters: rank, scale and which linears of each adapted layer get one."""

    rank: int = 4
    """r, rank of every session's adapter."""
    alpha: float = 8.0
    """Scale numerator: the adapter output is multiplied by alpha / r."""
    targets: Tuple[str, ...] = ("qkv_proj", "out_proj", "fc1", "fc2")
    """Linears of each adapted layer (any of qkv_proj, out_proj, fc1, fc2)."""

    def __post_init__(self):
        self.targets = tuple(self.targets)
        unknown = sorted(set(self.targets) - set(TARGET_PATHS))
        if unknown or not self.targets:
            raise ValueError(f"unknown LoRA target(s) {unknown}; known: {sorted(TARGET_PATHS)}")
        if self.rank < 1:
            raise ValueError(f"rank must be >= 1, got {self.rank}")


class LoRALinear(nn.Module):
    """A frozen linear layer plus per-session low-rank adapters (see module docstring).

    While ``capture`` is a list, every forward appends its valid inputs [tokens, in]
    (rows where ``token_mask`` is True, when set) for the projection statistics.
    """

    def __init__(self, base: nn.Linear, rank: int, alpha: float):
        super().__init__()
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.rank = rank
        self.scale = alpha / rank
        self.lora_A = nn.ParameterList()
        self.lora_B = nn.ParameterList()
        self.capture: Optional[List[Tensor]] = None
        self.token_mask: Optional[Tensor] = None

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    @property
    def num_sessions(self) -> int:
        return len(self.lora_A)

    def add_session_(self, generator: torch.Generator) -> None:
        """Freeze all adapters, then append A (Kaiming-uniform, from ``generator``) and B = 0."""
        for p in list(self.lora_A) + list(self.lora_B):
            p.requires_grad_(False)
        w = self.base.weight
        bound = 1.0 / math.sqrt(self.in_features)
        a = (torch.rand(self.rank, self.in_features, generator=generator, dtype=torch.float32) * 2 - 1) * bound
        self.lora_A.append(nn.Parameter(a.to(device=w.device, dtype=w.dtype)))
        self.lora_B.append(nn.Parameter(torch.zeros(self.out_features, self.rank, device=w.device, dtype=w.dtype)))

    def current(self) -> Tuple[nn.Parameter, nn.Parameter]:
        """(A, B) of the newest session."""
        if not self.num_sessions:
            raise RuntimeError("no LoRA session: call add_session_ first")
        return self.lora_A[-1], self.lora_B[-1]

    def delta(self, session: int) -> Tensor:
        """(alpha / r) B_s A_s: [out, in]."""
        return self.scale * (self.lora_B[session] @ self.lora_A[session])

    def merged_weight(self) -> Tensor:
        """W + sum of every session's delta: [out, in]."""
        w = self.base.weight
        for s in range(self.num_sessions):
            w = w + self.delta(s)
        return w

    @torch.no_grad()
    def merge_(self) -> None:
        """Fold all adapters into the base weight and drop them."""
        self.base.weight.copy_(self.merged_weight())
        self.lora_A = nn.ParameterList()
        self.lora_B = nn.ParameterList()

    def forward(self, x: Tensor) -> Tensor:
        """x [..., in] -> [..., out]."""
        if self.capture is not None:
            rows = x.detach()
            rows = rows[self.token_mask] if self.token_mask is not None else rows.reshape(-1, rows.shape[-1])
            self.capture.append(rows)
        y = self.base(x)
        for a, b in zip(self.lora_A, self.lora_B):
            y = y + self.scale * F.linear(F.linear(x, a), b)
        return y


def add_lora(encoder: nn.Module, layers: Sequence[int], config: LoRAConfig) -> Dict[str, LoRALinear]:
    """Wrap the target linears of ``encoder.encoder.layers[i]`` (i in ``layers``, 0-based)
    in ``LoRALinear`` (in place) and return them by name, e.g. ``layers.3.fc1``.

    Layers already wrapped are returned as they are.
    """
    stack = encoder.encoder.layers
    out: Dict[str, LoRALinear] = {}
    for i in layers:
        if not 0 <= i < len(stack):
            raise ValueError(f"layer {i} out of range for {len(stack)} layers")
        for target in config.targets:
            *parents, attr = TARGET_PATHS[target]
            owner = stack[i]
            for name in parents:
                owner = getattr(owner, name)
            module = getattr(owner, attr)
            if not isinstance(module, LoRALinear):
                module = LoRALinear(module, config.rank, config.alpha)
                setattr(owner, attr, module)
            out[f"layers.{i}.{target}"] = module
    return out


def find_lora(module: nn.Module) -> Dict[str, LoRALinear]:
    """Every LoRALinear inside ``module`` by qualified name."""
    return {name: m for name, m in module.named_modules() if isinstance(m, LoRALinear)}


def add_session_(modules: Dict[str, LoRALinear], generator: torch.Generator) -> None:
    """Start a new session on every module (in name order, so one generator is reproducible)."""
    for name in sorted(modules):
        modules[name].add_session_(generator)


def session_parameters(modules: Dict[str, LoRALinear]) -> List[nn.Parameter]:
    """The newest session's A and B of every module (the only trainable adapter weights)."""
    params = []
    for name in sorted(modules):
        params += list(modules[name].current())
    return params
