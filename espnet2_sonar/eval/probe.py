"""Frozen linear probe over every layer: softmax-weighted layer sum + linear classifier.

The SUPERB recipe for utterance classification is weighted sum over layers -> mean
pooling over time -> linear. Both the weighted sum and (optional) per-layer
standardisation are affine per layer, so they commute with mean pooling: the probe
trains on per-layer *pooled* embeddings ``[n, L+1, D]`` (see ``embeddings.py``), which
are extracted once per checkpoint and data set and reused by every seed.

Training: Adam on mini-batches shuffled by a seeded ``torch.Generator``; after every
epoch the validation accuracy is measured and the best state (accuracy, ties broken by
lower loss) is kept; training stops after ``patience`` epochs without improvement.
"""

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from espnet2_sonar.utils.config import StrictConfig
from espnet2_sonar.utils.precision import precision_record


@dataclass
class ProbeConfig(StrictConfig):
    """Hyper-parameters of the probe; unknown keys in ``from_dict`` are errors."""

    lr: float = 1e-3
    """Adam learning rate."""
    weight_decay: float = 0.0
    """Adam weight decay (L2) on the linear head."""
    batch_size: int = 64
    """Mini-batch size (items)."""
    max_epochs: int = 200
    """Upper bound on passes over the training set."""
    patience: int = 20
    """Stop after this many epochs without a better validation score."""
    valid_fraction: float = 0.1
    """Share of each training class held out for early stopping when no valid set is given."""
    standardize: bool = True
    """Z-score each layer's pooled embedding with training-split statistics (mean/std per
    layer and dimension) before the weighted sum; an affine map per layer, so it commutes
    with mean pooling. Makes one learning rate work across checkpoints whose layers have
    very different scales. False gives SUPERB's raw weighted sum."""

    def __post_init__(self):
        if self.lr <= 0 or self.batch_size < 1 or self.max_epochs < 1 or self.patience < 1:
            raise ValueError(f"invalid probe config: {self}")
        if not 0.0 < self.valid_fraction < 1.0:
            raise ValueError(f"valid_fraction must be in (0, 1), got {self.valid_fraction}")


class LayerWeightedLinearProbe(nn.Module):
    """Softmax-weighted sum over layers followed by a linear classifier.

    Input ``[B, L, D]`` pooled per-layer embeddings, output ``[B, C]`` logits.
    """

    def __init__(self, num_layers: int, dim: int, num_classes: int):
        super().__init__()
        # Zero initialisation (uniform layer weights, all-zero logits): the problem is convex
        # in the head, and a random head could map well-separated clusters to the right
        # classes by luck before any training (seen with shuffled labels).
        self.layer_logits = nn.Parameter(torch.zeros(num_layers))
        self.head = nn.Linear(dim, num_classes)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.register_buffer("mean", torch.zeros(num_layers, dim))
        self.register_buffer("inv_std", torch.ones(num_layers, dim))

    def set_standardization_(self, x: Tensor, eps: float = 1e-5) -> None:
        """Fix the per-layer affine normalisation from training embeddings ``x [n, L, D]``."""
        self.mean.copy_(x.mean(dim=0))
        self.inv_std.copy_(1.0 / (x.std(dim=0, unbiased=False) + eps))

    def layer_weights(self) -> Tensor:
        """[L] softmax of the layer logits."""
        return F.softmax(self.layer_logits, dim=0)

    def forward(self, x: Tensor) -> Tensor:
        x = (x - self.mean) * self.inv_std  # [B, L, D]
        mixed = torch.einsum("l,bld->bd", self.layer_weights(), x)  # [B, D]
        return self.head(mixed)  # [B, C]


@dataclass
class ProbeFit:
    """A trained probe and how training went."""

    model: LayerWeightedLinearProbe
    """The probe in its best-validation state, in eval mode."""
    epochs: int
    """Epochs actually run."""
    best_epoch: int
    """1-based epoch of the kept state."""
    best_valid_accuracy: float
    best_valid_loss: float
    history: List[Dict[str, float]] = field(default_factory=list)
    """Per epoch: train_loss, valid_loss, valid_accuracy."""


def stratified_split(labels: Tensor, fraction: float, seed: int) -> "tuple[Tensor, Tensor]":
    """Seeded per-class hold-out: returns (train_idx, valid_idx), both sorted LongTensors.

    Each class with at least 2 items gives ``max(1, round(fraction * n_c))`` items (never
    all of them) to the validation part; singleton classes stay in training.
    """
    gen = torch.Generator().manual_seed(seed)
    valid = []
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).view(-1)
        if idx.numel() < 2:
            continue
        k = min(max(1, round(fraction * idx.numel())), idx.numel() - 1)
        valid.append(idx[torch.randperm(idx.numel(), generator=gen)[:k]])
    if not valid:
        raise ValueError("cannot hold out a validation split: every class has a single item")
    valid_idx = torch.cat(valid).sort().values
    mask = torch.ones(labels.numel(), dtype=torch.bool)
    mask[valid_idx] = False
    return torch.nonzero(mask).view(-1), valid_idx


@torch.no_grad()
def evaluate_probe(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 1024) -> "tuple[float, float, Tensor]":
    """(mean CE loss, accuracy, predictions [n]) of ``model`` on ``x [n, L, D]``, ``y [n]``."""
    model.eval()
    logits = torch.cat([model(x[i : i + batch_size]) for i in range(0, x.size(0), batch_size)])
    loss = F.cross_entropy(logits, y).item()
    pred = logits.argmax(dim=-1)
    return loss, (pred == y).float().mean().item(), pred


def fit_probe(
    train_x: Tensor,
    train_y: Tensor,
    valid_x: Tensor,
    valid_y: Tensor,
    num_classes: int,
    config: ProbeConfig,
    seed: int,
    device: Optional[str] = None,
) -> ProbeFit:
    """Train a ``LayerWeightedLinearProbe`` with early stopping on the validation split.

    Args:
        train_x: [n, L, D] pooled per-layer embeddings; train_y: [n] class indices.
        valid_x: [m, L, D]; valid_y: [m].
        seed: seeds the batch order (no global seeding); the probe starts from zeros.
    """
    if train_x.dim() != 3 or train_x.size(0) != train_y.numel():
        raise ValueError(
            f"train_x must be [n, L, D] matching train_y [n]; got {tuple(train_x.shape)}, {tuple(train_y.shape)}"
        )
    if valid_x.size(0) == 0:
        raise ValueError("the validation split is empty")
    device = device or "cpu"
    gen = torch.Generator().manual_seed(seed)
    _, num_layers, dim = train_x.shape
    model = LayerWeightedLinearProbe(num_layers, dim, num_classes)
    if config.standardize:
        model.set_standardization_(train_x.float())
    model.to(device)
    tx, ty = train_x.float().to(device), train_y.long().to(device)
    vx, vy = valid_x.float().to(device), valid_y.long().to(device)
    optim = torch.optim.Adam(
        [
            {"params": [model.layer_logits], "weight_decay": 0.0},
            {"params": model.head.parameters(), "weight_decay": config.weight_decay},
        ],
        lr=config.lr,
    )
    best = None  # (accuracy, -loss) of the kept state
    best_state, best_epoch, history = None, 0, []
    epoch = 0
    for epoch in range(1, config.max_epochs + 1):
        model.train()
        order = torch.randperm(tx.size(0), generator=gen).to(device)
        total = 0.0
        for i in range(0, order.numel(), config.batch_size):
            batch = order[i : i + config.batch_size]
            loss = F.cross_entropy(model(tx[batch]), ty[batch])
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            total += loss.item() * batch.numel()
        valid_loss, valid_acc, _ = evaluate_probe(model, vx, vy)
        history.append({"train_loss": total / tx.size(0), "valid_loss": valid_loss, "valid_accuracy": valid_acc})
        score = (valid_acc, -valid_loss)
        if best is None or score > best:
            best, best_epoch = score, epoch
            best_state = copy.deepcopy(model.state_dict())
        elif epoch - best_epoch >= config.patience:
            break
    model.load_state_dict(best_state)
    model.eval()
    return ProbeFit(
        model=model,
        epochs=epoch,
        best_epoch=best_epoch,
        best_valid_accuracy=best[0],
        best_valid_loss=-best[1],
        history=history,
    )


def _label_indices(labels: List[str], classes: List[str], where: str) -> Tensor:
    index = {c: i for i, c in enumerate(classes)}
    unseen = sorted(set(labels) - set(index))
    if unseen:
        raise ValueError(f"{where}: label(s) {unseen} do not occur in the training set (classes: {classes})")
    return torch.tensor([index[c] for c in labels], dtype=torch.long)


def run_probe(
    ckpt: str,
    train_dir: str,
    test_dir: str,
    valid_dir: Optional[str] = None,
    seed: int = 0,
    config: Optional[ProbeConfig] = None,
    cache_dir: Optional[str] = None,
    device: str = "cpu",
    batch_size: int = 8,
    chunk_seconds: Optional[float] = 10.0,
    model_config: Optional[str] = None,
    precision: str = "fp32",
) -> Dict:
    """Frozen-encoder probe of ``ckpt`` on Kaldi-style dirs (wav.scp + utt2label).

    ``precision`` (fp32 / bf16 / fp16) is that of the encoder's forward; the probe itself
    trains in fp32 on fp32 embeddings.

    Embeddings are cached under ``cache_dir`` (None: no cache); the encoder is loaded only
    when some split is not cached. Returns the JSON-ready result (see ``bin/probe.py``).
    """
    import time

    from espnet2_sonar.eval.checkpoints import load_encoder, resolve_checkpoint
    from espnet2_sonar.data.labelled_dir import read_labelled_dir
    from espnet2_sonar.eval.embeddings import load_or_extract
    from espnet2_sonar.eval.metrics import classification_metrics

    config = config or ProbeConfig()
    start = time.time()
    files = resolve_checkpoint(ckpt, model_config)
    dirs = {"train": read_labelled_dir(train_dir), "test": read_labelled_dir(test_dir)}
    if valid_dir is not None:
        dirs["valid"] = read_labelled_dir(valid_dir)
    classes = sorted(set(dirs["train"].labels))
    if len(classes) < 2:
        raise ValueError(f"{train_dir}/utt2label: a probe needs at least 2 classes, found {classes}")
    labels = {
        name: _label_indices(d.labels, classes, str(d.path / "utt2label")) for name, d in dirs.items()
    }
    encoder = []

    def get_encoder():
        if not encoder:
            encoder.append(load_encoder(ckpt, model_config).to(device))
        return encoder[0]

    pooled = {
        name: load_or_extract(get_encoder, files.files, d, cache_dir, batch_size, chunk_seconds, device, desc=name,
                              precision=precision)
        for name, d in dirs.items()
    }
    x = {name: p.embeddings for name, p in pooled.items()}
    if valid_dir is None:
        train_idx, valid_idx = stratified_split(labels["train"], config.valid_fraction, seed)
        x["valid"], labels["valid"] = x["train"][valid_idx], labels["train"][valid_idx]
        x["train"], labels["train"] = x["train"][train_idx], labels["train"][train_idx]
    fit = fit_probe(x["train"], labels["train"], x["valid"], labels["valid"], len(classes), config, seed, device)
    _, _, pred = evaluate_probe(fit.model, x["test"].to(device), labels["test"].to(device))
    scores = classification_metrics(labels["test"].tolist(), pred.cpu().tolist(), classes)
    per_class = {}
    for i, c in enumerate(classes):
        entry = {f"n_{s}": int((labels[s] == i).sum()) for s in ("train", "valid", "test")}
        entry.update({k: v for k, v in dataclasses.asdict(scores.per_class[c]).items() if k != "n"})
        per_class[c] = entry
    return {
        "accuracy": scores.accuracy,
        "macro_f1": scores.macro_f1,
        "n_train": int(labels["train"].numel()),
        "n_valid": int(labels["valid"].numel()),
        "n_test": int(labels["test"].numel()),
        "valid_source": "valid_dir" if valid_dir is not None else f"seeded {config.valid_fraction:.0%} split of train",
        "layer_weights": fit.model.layer_weights().detach().cpu().tolist(),
        "num_layers": int(x["train"].size(1)),
        "dim": int(x["train"].size(2)),
        "seed": seed,
        "ckpt": str(ckpt),
        "train_dir": str(train_dir),
        "valid_dir": None if valid_dir is None else str(valid_dir),
        "test_dir": str(test_dir),
        "epochs": fit.epochs,
        "best_epoch": fit.best_epoch,
        "best_valid_accuracy": fit.best_valid_accuracy,
        "best_valid_loss": fit.best_valid_loss,
        "classes": classes,
        "per_class": per_class,
        "confusion": scores.confusion,
        "probe_config": dataclasses.asdict(config),
        "chunk_seconds": chunk_seconds,
        "precision": precision_record(precision, device),
        "embedding_cache": {
            name: {"from_cache": p.from_cache, "path": None if p.cache_path is None else str(p.cache_path)}
            for name, p in pooled.items()
        },
        "elapsed_seconds": round(time.time() - start, 3),
    }
