"""Run one method on one class-incremental benchmark with one backbone and seed.

Per session t (classes ``benchmark.session_classes(t)``):

1. adapt the backbone when the method says so (``MethodConfig.adaptation``): on the first
   adaptation the CKA probe picks the LoRA layers, the adapters are added and the input of
   the first adapted layer is cached for every clip; each adapted session then adds a new
   LoRA session (earlier ones frozen) and trains it (``adapt.adapt_session``);
2. with projection, the session's inputs to every LoRA linear under the current model are
   added to the protected covariance (the next session's "unlearned" model);
3. the classifier is updated with the session's training features;
4. the test items of every class seen so far are scored over all seen classes.

Randomness: one ``torch.Generator`` seeded with ``seed`` (class order uses the benchmark's
own seed); no global seeding.
"""

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch
from torch import Tensor

from espnet2_sonar.pace.adapt import SessionData, accumulate_inputs_, adapt_session, features_from_cache, select_depth
from espnet2_sonar.pace.benchmarks import Benchmark, build_benchmark
from espnet2_sonar.pace.classifiers import AnalyticHead, LinearHead
from espnet2_sonar.pace.fbanks import load_fbanks
from espnet2_sonar.pace.lora import LoRALinear, add_lora, add_session_
from espnet2_sonar.pace.methods import MethodConfig, method_config
from espnet2_sonar.pace.metrics import ContinualMetrics, continual_metrics, session_scores
from espnet2_sonar.pace.model import Hidden, PooledBackbone
from espnet2_sonar.pace.projection import SubspaceProtector
from espnet2_sonar.utils.precision import autocast_context, precision_record

RESULT_FORMAT = "pace_result/1"


@dataclass
class PaceResult:
    """Outcome of one run (``to_dict`` is the result JSON)."""

    benchmark: dict
    method: dict
    seed: int
    metrics: ContinualMetrics
    sessions: List[dict] = field(default_factory=list)
    """Per session: n_train, n_test, adapted, accuracy, and adaptation details."""
    lora_layers: List[int] = field(default_factory=list)
    cka: List[float] = field(default_factory=list)
    info: Dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["format"] = RESULT_FORMAT
        return d


class _Backbone:
    """The backbone, its LoRA state and the per-clip caches of one run."""

    def __init__(self, encoder, method: MethodConfig, fb_train: List[Tensor], fb_test: List[Tensor], device: str):
        self.method = method
        self.device = device
        self.net = PooledBackbone(encoder, method.layer).to(device)
        self.fb = {"train": fb_train, "test": fb_test}
        self.start: Optional[int] = None
        self.modules: Dict[str, LoRALinear] = {}
        self.hidden: Dict[str, List[Hidden]] = {}
        self._feats: Dict[str, Tensor] = {}

    def features(self, split: str) -> Tensor:
        """Pooled features [n, D] of every clip of ``split`` under the current backbone."""
        if split not in self._feats:
            with autocast_context(self.method.precision, self.device):
                if self.start is None:
                    self._feats[split] = self.net.extract(self.fb[split], self.method.batch_size, self.device)
                else:
                    self._feats[split] = features_from_cache(
                        self.net, self.hidden[split], self.start, self.method.batch_size, self.device
                    )
        return self._feats[split]

    def changed(self) -> None:
        self._feats.clear()

    def add_adapters(self, lora_layers: List[int]) -> None:
        self.start = lora_layers[0]
        self.modules = add_lora(self.net.encoder, lora_layers, self.method.lora)
        for split, fbanks in self.fb.items():
            self.hidden[split] = self.net.extract(fbanks, self.method.batch_size, self.device, start=self.start)
        self.changed()


def run_method(
    benchmark: Benchmark,
    encoder,
    method: MethodConfig,
    seed: int = 0,
    device: str = "cpu",
    cache_dir: Optional[str | Path] = None,
    log: Callable[[str], None] = lambda s: None,
) -> PaceResult:
    """Run ``method`` over ``benchmark`` with ``encoder`` (a BeatsEncoder, changed in place)."""
    start_time = time.time()
    gen = torch.Generator().manual_seed(seed)
    frontend = encoder.frontend
    fb_train = load_fbanks(benchmark.train.wav_paths, frontend, method.max_seconds, cache_dir, "train fbank")
    fb_test = load_fbanks(benchmark.test.wav_paths, frontend, method.max_seconds, cache_dir, "test fbank")
    bb = _Backbone(encoder, method, fb_train, fb_test, device)
    if method.classifier == "linear":
        classifier = LinearHead(bb.net.dim, method.linear)
    else:
        classifier = AnalyticHead(bb.net.dim, method.analytic, seed)
    protector = SubspaceProtector(method.subspace) if method.projection else None
    perturb = method.perturb if method.perturbation else None
    train_y, test_y = benchmark.train.labels, benchmark.test.labels
    depth = None
    sessions, session_acc, matrix = [], [], []
    adapted_samples = 0

    def adapt(idx: Tensor, offset: int, num_classes: int) -> dict:
        nonlocal depth
        labels = train_y[idx] - offset
        fbanks = [fb_train[int(i)] for i in idx]
        if depth is None:
            probe = SessionData(fbanks, [], labels, num_classes)
            depth = select_depth(bb.net, probe, method.adapt, gen, device)
            log(f"CKA per layer {[round(c, 4) for c in depth.cka]} -> LoRA on layers {depth.lora_layers}")
            bb.add_adapters(depth.lora_layers)
        add_session_(bb.modules, gen)
        data = SessionData(fbanks, [bb.hidden["train"][int(i)] for i in idx], labels, num_classes)
        report = adapt_session(bb.net, bb.modules, bb.start, data, method.adapt, gen, device, perturb, protector)
        bb.changed()
        return dataclasses.asdict(report)

    joint_report = None
    if method.adaptation == "joint":
        all_idx = torch.arange(len(benchmark.train))
        joint_report = adapt(all_idx, 0, benchmark.num_classes)
    for t in range(benchmark.num_sessions):
        classes = benchmark.session_classes(t)
        idx = benchmark.train.select(classes)
        entry: Dict[str, object] = {"n_train": int(idx.numel()), "adapted": False}
        do_adapt = (method.adaptation == "first" and t == 0) or (
            method.adaptation == "multi" and (method.n_stop is None or adapted_samples < method.n_stop)
        )
        if do_adapt:
            entry["adaptation"] = adapt(idx, classes.start, len(classes))
            entry["adapted"] = True
            adapted_samples += int(idx.numel())
        if protector is not None and bb.modules:
            hidden = [bb.hidden["train"][int(i)] for i in idx]
            entry["protected_ranks"] = accumulate_inputs_(
                protector, bb.net, bb.modules, hidden, bb.start, method.adapt.batch_size, device
            )
        classifier.update_(bb.features("train")[idx], train_y[idx], classes.stop, gen)
        seen = benchmark.test.select(benchmark.seen_classes(t))
        pred = classifier.scores(bb.features("test")[seen], classes.stop).argmax(dim=-1)
        acc, row = session_scores(pred, test_y[seen], benchmark.offsets, t)
        entry.update(n_test=int(seen.numel()), accuracy=acc, per_session_accuracy=row)
        session_acc.append(acc)
        matrix.append(row)
        sessions.append(entry)
        log(f"session {t}: {len(classes)} classes, {idx.numel()} train clips, accuracy {acc:.4f}")
    info = {"elapsed_seconds": round(time.time() - start_time, 3), "device": device}
    if joint_report is not None:
        info["joint_adaptation"] = joint_report
    return PaceResult(
        benchmark=benchmark.describe(),
        method=method.to_dict(),
        seed=seed,
        metrics=continual_metrics(session_acc, matrix),
        sessions=sessions,
        lora_layers=list(depth.lora_layers) if depth else [],
        cka=list(depth.cka) if depth else [],
        info=info,
    )


def run_pace(
    ckpt: str | Path,
    benchmark: str,
    method: str,
    data_dir: str | Path,
    seed: int = 0,
    overrides: Optional[dict] = None,
    device: str = "cpu",
    cache_dir: Optional[str | Path] = None,
    log: Callable[[str], None] = lambda s: None,
    *,
    load_encoder: Callable[[str | Path], torch.nn.Module],
) -> dict:
    """Build the benchmark, load ``ckpt`` with ``load_encoder`` (``eval.checkpoints.load_encoder``:
    official BEATs, ESPnet or any registered kind) and run the named method; returns the
    JSON-ready result."""
    config = method_config(method, overrides)
    bench = build_benchmark(benchmark, data_dir, seed, config.benchmark)
    encoder = load_encoder(ckpt)
    result = run_method(bench, encoder, config, seed, device, cache_dir, log).to_dict()
    result["ckpt"] = str(ckpt)
    result["data_dir"] = str(data_dir)
    result["precision"] = precision_record(config.precision, device)
    return result
