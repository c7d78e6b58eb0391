"""Session adaptation of the backbone: head first, then LoRA (optionally projected, perturbed).

First-session adaptation (FSA) as in PACE (optimiser: ``AdaptConfig.optimizer``, Adam by
default; the paper's SGD is available):

1. a head is trained for ``head_epochs`` at ``head_lr`` on the frozen features, then frozen;
2. the newest LoRA adapters (only) train for ``epochs`` (E0) at ``backbone_lr`` against that
   head with cross-entropy, plus (``perturb``) the boundary hinge term; with a
   ``SubspaceProtector`` the adapters start and stay orthogonal to the protected inputs.

The head is a cosine classifier (logits = scale * cos(f, w_c)) initialised at the class
means, so it gives the backbone a useful gradient from the first step whatever the feature
scale (a zero-initialised linear head would give none).

Layers below the first adapted one never change, so their output (the input of layer
``start``) is computed once per clip (``PooledBackbone.extract(..., start=start)``) and every
training step runs only layers ``start..``. Perturbed copies need the full forward pass
from the masked fbank; they run without gradients.

``select_depth`` runs the CKA probe: a throw-away copy of the encoder is fine-tuned in full
for ``cka_epochs``, and LoRA goes on the layers past the first one whose token features have
CKA < ``cka_threshold`` to the pretrained model's.
"""

import copy
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from espnet2_sonar.nn.specaug import SpecAugment
from espnet2_sonar.pace.cka import DepthSelection, layerwise_cka, select_lora_layers
from espnet2_sonar.pace.fbanks import pad_fbanks
from espnet2_sonar.pace.lora import LoRALinear, session_parameters
from espnet2_sonar.pace.model import Hidden, PooledBackbone, pad_hidden
from espnet2_sonar.pace.perturb import PerturbConfig, boundary_mask, class_means, hinge_loss
from espnet2_sonar.pace.projection import SubspaceProtector, capture_inputs, set_token_mask
from espnet2_sonar.utils.config import StrictConfig


@dataclass
class AdaptConfig(StrictConfig):
    """Backbone adaptation (FSA and later sessions) and the CKA depth probe."""

    optimizer: str = "adam"
    """``adam`` or ``sgd`` (with momentum), for the head and the backbone. The paper's SGD
    rates (head 0.01, backbone 0.05) made LoRA on the tiny CPU backbone stall, then diverge."""
    head_lr: float = 0.001
    """lr of the head (trained first, then frozen); below ``backbone_lr`` as in PACE."""
    backbone_lr: float = 0.003
    """lr of the LoRA adapters (and of the full fine-tune in the CKA probe)."""
    head_epochs: int = 1
    """Head-only epochs before the head is frozen."""
    epochs: int = 10
    """E0: LoRA epochs per adapted session."""
    batch_size: int = 16
    momentum: float = 0.9
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    """Max gradient norm of the trained parameters (0: no clipping)."""
    logit_scale: float = 16.0
    """Scale of the cosine head's logits."""
    cka_threshold: float = 0.94
    """LoRA goes past the first layer whose CKA to the pretrained model drops below this."""
    cka_epochs: int = 2
    """Epochs of the full fine-tune run by the CKA probe."""
    cka_max_tokens: int = 4096
    """Patch tokens (seeded subsample) per layer used for CKA."""
    min_lora_layers: int = 1
    """At least this many of the deepest layers get LoRA."""

    def __post_init__(self):
        if self.head_lr <= 0 or self.backbone_lr <= 0 or self.batch_size < 1 or self.epochs < 0:
            raise ValueError(f"invalid adaptation config: {self}")
        if self.head_epochs < 0 or self.cka_epochs < 0 or self.min_lora_layers < 1:
            raise ValueError(f"invalid adaptation config: {self}")
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be sgd or adam, got {self.optimizer!r}")


@dataclass
class SessionData:
    """Training clips of one adaptation step.

    fbanks: [F_i, 128] per clip; hidden: each clip's input of layer ``start`` (x [1, N_i, D]);
    labels: [n] class ids local to the step (0..num_classes-1).
    """

    fbanks: List[Tensor]
    hidden: List[Hidden]
    labels: Tensor
    num_classes: int


@dataclass
class AdaptReport:
    """What one adaptation step did."""

    epoch_loss: List[float] = field(default_factory=list)
    epoch_hinge: List[float] = field(default_factory=list)
    boundary_size: List[int] = field(default_factory=list)
    """Boundary-set size per epoch (perturbations only)."""


class CosineHead(nn.Module):
    """logits [B, C] = scale * cos(features [B, D], weight [C, D])."""

    def __init__(self, weight: Tensor, scale: float):
        super().__init__()
        self.weight = nn.Parameter(weight.clone().float())
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        return self.scale * F.normalize(x, dim=-1) @ F.normalize(self.weight, dim=-1).T


def _batches(n: int, batch_size: int, generator: torch.Generator) -> List[Tensor]:
    order = torch.randperm(n, generator=generator)
    return [order[s : s + batch_size] for s in range(0, n, batch_size)]


def _optimizer(params, lr: float, config: AdaptConfig) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=config.momentum, weight_decay=config.weight_decay)


def pooled_from_cache(
    backbone: PooledBackbone, hidden: List[Hidden], start: int, idx=None, device: str = "cpu"
) -> Tensor:
    """Pooled features [b, D] of the clips ``idx`` (default all) from their cached layer input."""
    idx = range(len(hidden)) if idx is None else idx
    h = pad_hidden([hidden[int(i)] for i in idx])
    return backbone.pooled_from(Hidden(h.x.to(device), h.padding_mask.to(device)), start)


@torch.no_grad()
def features_from_cache(
    backbone: PooledBackbone, hidden: List[Hidden], start: int, batch_size: int = 32, device: str = "cpu"
) -> Tensor:
    """Pooled features [n, D] (CPU) of every cached clip."""
    order = sorted(range(len(hidden)), key=lambda i: hidden[i].x.shape[1])
    out = torch.zeros(len(hidden), backbone.dim)
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        out[idx] = pooled_from_cache(backbone, hidden, start, idx, device).float().cpu()
    return out


def train_head(features: Tensor, labels: Tensor, num_classes: int, config: AdaptConfig, generator) -> CosineHead:
    """Cosine head initialised at the class means, trained ``head_epochs`` with SGD, then frozen."""
    head = CosineHead(class_means(features.float(), labels, num_classes), config.logit_scale)
    optim = _optimizer(head.parameters(), config.head_lr, config)
    for _ in range(config.head_epochs):
        for b in _batches(features.shape[0], config.batch_size, generator):
            loss = F.cross_entropy(head(features[b].float()), labels[b])
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
    return head.requires_grad_(False)


@torch.no_grad()
def find_boundary(
    backbone: PooledBackbone,
    head: nn.Module,
    data: SessionData,
    config: PerturbConfig,
    generator: torch.Generator,
    batch_size: int,
    device: str,
) -> Tensor:
    """BoolTensor[n]: clips whose N_p masked copies are misclassified at a rate above rho_p."""
    errors = torch.zeros(len(data.fbanks))
    order = sorted(range(len(data.fbanks)), key=lambda i: data.fbanks[i].shape[0])
    masker = SpecAugment(config.specaug())
    for _ in range(config.num_copies):
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            batch = pad_fbanks([data.fbanks[i] for i in idx])
            batch.fbank, _ = masker(batch.fbank, batch.frame_lengths, generator)
            pred = head(backbone.pooled(batch.to(device))).argmax(-1).cpu()
            errors[idx] += (pred != data.labels[idx]).float()
    return boundary_mask(errors / config.num_copies, config.rho_p)


def adapt_session(
    backbone: PooledBackbone,
    modules: Dict[str, LoRALinear],
    start: int,
    data: SessionData,
    config: AdaptConfig,
    generator: torch.Generator,
    device: str = "cpu",
    perturb: Optional[PerturbConfig] = None,
    protector: Optional[SubspaceProtector] = None,
) -> AdaptReport:
    """Train the newest LoRA session of ``modules`` on ``data`` (see module docstring).

    Every other parameter of ``backbone`` stays frozen.
    """
    backbone.requires_grad_(False)
    params = session_parameters(modules)
    for p in params:
        p.requires_grad_(True)
    if protector is not None:
        protector.project_init_(modules)
    labels = data.labels.long()
    clean = features_from_cache(backbone, data.hidden, start, config.batch_size, device)
    head = train_head(clean, labels, data.num_classes, config, generator).to(device)
    optim = _optimizer(params, config.backbone_lr, config)
    report = AdaptReport()
    for _ in range(config.epochs):
        means = bfeats = blabels = center = None
        if perturb is not None:
            clean = features_from_cache(backbone, data.hidden, start, config.batch_size, device)
            bmask = find_boundary(backbone, head, data, perturb, generator, config.batch_size, device)
            means = class_means(clean, labels, data.num_classes).to(device)
            center = clean.mean(dim=0).to(device)
            bfeats, blabels = clean[bmask].to(device), labels[bmask].to(device)
            report.boundary_size.append(int(bmask.sum()))
        total = hinge_total = 0.0
        for b in _batches(len(data.hidden), config.batch_size, generator):
            feats = pooled_from_cache(backbone, data.hidden, start, b, device)
            y = labels[b].to(device)
            loss = F.cross_entropy(head(feats), y)
            if perturb is not None and perturb.weight > 0:
                hinge = hinge_loss(feats, y, means, bfeats, blabels, perturb.margin, center)
                loss = loss + perturb.weight * hinge
                hinge_total += float(hinge.detach()) * b.numel()
            optim.zero_grad(set_to_none=True)
            loss.backward()
            if protector is not None:
                protector.project_grads_(modules)
            if config.grad_clip > 0:
                nn.utils.clip_grad_norm_(params, config.grad_clip)
            optim.step()
            if protector is not None:
                protector.project_params_(modules)
            total += float(loss.detach()) * b.numel()
        report.epoch_loss.append(total / len(data.hidden))
        report.epoch_hinge.append(hinge_total / len(data.hidden))
    for p in params:
        p.requires_grad_(False)
    return report


@torch.no_grad()
def accumulate_inputs_(
    protector: SubspaceProtector,
    backbone: PooledBackbone,
    modules: Dict[str, LoRALinear],
    hidden: List[Hidden],
    start: int,
    batch_size: int = 16,
    device: str = "cpu",
) -> Dict[str, int]:
    """Add the LoRA modules' valid inputs on ``hidden`` (current model) to the protector's
    covariances and recompute the protected bases; returns their ranks."""
    capture_inputs(modules, True)
    try:
        for s in range(0, len(hidden), batch_size):
            h = pad_hidden(hidden[s : s + batch_size])
            set_token_mask(modules.values(), ~h.padding_mask.to(device))
            backbone.pooled_from(Hidden(h.x.to(device), h.padding_mask.to(device)), start)
            for name, m in modules.items():
                for rows in m.capture:
                    protector.accumulate_(name, rows)
                m.capture = []
    finally:
        capture_inputs(modules, False)
    return protector.update_bases_()


def _tokens(layers: List[Tensor], padding_mask: Tensor) -> List[Tensor]:
    """Valid tokens of layers 1..L: each [tokens, D]."""
    return [h[~padding_mask].float().cpu() for h in layers[1:]]


def select_depth(
    backbone: PooledBackbone, data: SessionData, config: AdaptConfig, generator: torch.Generator, device: str = "cpu"
) -> DepthSelection:
    """CKA probe (see module docstring); ``backbone`` itself is left unchanged."""
    tuned = PooledBackbone(copy.deepcopy(backbone.encoder), backbone.layer).to(device)
    tuned.requires_grad_(True)
    labels = data.labels.long()
    fbanks = data.fbanks
    with torch.no_grad():
        clean = backbone.extract(fbanks, config.batch_size, device)
    head = train_head(clean, labels, data.num_classes, config, generator).to(device)
    params = [p for p in tuned.parameters() if p.requires_grad]
    optim = _optimizer(params, config.backbone_lr, config)
    for _ in range(config.cka_epochs):
        for b in _batches(len(fbanks), config.batch_size, generator):
            batch = pad_fbanks([fbanks[int(i)] for i in b]).to(device)
            loss = F.cross_entropy(head(tuned.pooled(batch)), labels[b].to(device))
            optim.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                nn.utils.clip_grad_norm_(params, config.grad_clip)
            optim.step()
    ref: List[List[Tensor]] = [[] for _ in range(backbone.num_layers)]
    new: List[List[Tensor]] = [[] for _ in range(backbone.num_layers)]
    with torch.no_grad():
        for s in range(0, len(fbanks), config.batch_size):
            batch = pad_fbanks(fbanks[s : s + config.batch_size]).to(device)
            for store, model in ((ref, backbone), (new, tuned)):
                toks = _tokens(model.all_layers(batch), model.last_padding_mask)
                for i, t in enumerate(toks):
                    store[i].append(t)
    ref_t = [torch.cat(x) for x in ref]
    new_t = [torch.cat(x) for x in new]
    n = ref_t[0].shape[0]
    if n > config.cka_max_tokens:
        keep = torch.randperm(n, generator=generator)[: config.cka_max_tokens]
        ref_t = [x[keep] for x in ref_t]
        new_t = [x[keep] for x in new_t]
    return select_lora_layers(layerwise_cka(new_t, ref_t), config.cka_threshold, config.min_lora_layers)
