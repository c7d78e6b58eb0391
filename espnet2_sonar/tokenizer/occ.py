"""Online clustered codebook (OCC): SONAR's evolving tokenizer codebook (DESIGN.md, "SONAR" 3).

On top of the NormEMA codebook:

* **usage**: running usage p_k, an EMA (``usage_decay``) of each code's share of the
  batch's valid positions, summed over ranks.
* **re-anchoring** (CVQ-VAE style): every training step, codes with relative usage
  ``p_k * K < dead_usage_threshold`` that are not protected move toward anchors drawn
  uniformly from the batch's valid features,
  ``w_k <- l2norm((1 - a_k) w_k + a_k anchor_k)``,
  ``a_k = exp(-p_k * K * 10 / (1 - usage_decay) - anchor_eps)``.
* **protection**: a code whose usage on replay items (EMA ``replay_usage``) reaches
  ``protect_threshold`` (relative, ``p * K``), or that was passed to ``protect_codes_``,
  is protected for good: it is never re-anchored.
* **expansion**: when the share of new-domain (non-replay) features whose best cosine to
  the codebook is below ``novelty_threshold`` exceeds ``expand_trigger``, k-means on those
  features appends up to ``expand_codes`` codes, never past ``max_codes``. Existing codes
  are untouched. Checked every ``expand_every`` training steps, or on ``expand_``.

All state is in buffers (including the grown size: ``_load_from_state_dict`` resizes to the
checkpoint's size before loading). Randomness is drawn from ``seed`` and the step/expansion
counters held in buffers, so a resumed run draws what an uninterrupted one would.
Collectives are injected: ``all_reduce`` sums counts over ranks, ``broadcast`` gives every
rank rank 0's anchors and k-means centroids, so all ranks hold identical codebooks.

Note: under DDP with ``broadcast_buffers=True`` the wrapper keeps references to the
pre-expansion buffers; they are identical on all ranks anyway.
"""

from dataclasses import dataclass
from typing import Any, Dict, Optional

import torch

from espnet2_sonar.tokenizer.codebook import (
    Collective,
    NormEMACodebook,
    StepStats,
    codebook_kmeans,
    identity,
    l2norm,
)
from espnet2_sonar.utils.config import StrictConfig
from espnet2_sonar.utils.seeding import derive_seed


@dataclass
class OCCConfig(StrictConfig):
    """Online clustered codebook settings (every constant of DESIGN.md's OCC)."""

    num_codes: int = 1024
    """Initial number of codes K0."""
    dim: int = 256
    """Code dimension (the tokenizer's quant_dim)."""
    decay: float = 0.99
    """NormEMA decay of code vectors and of ``cluster_size`` (BEATs: 0.99)."""
    beta: float = 1.0
    """Commitment loss weight."""
    eps: float = 1e-5
    """Official quantizer's smoothing constant (format parity only)."""
    kmeans_init: bool = True
    """k-means-initialise on the first training batch (else random unit codes from seed)."""
    kmeans_iters: int = 10
    """Lloyd iterations of init and expansion k-means."""
    usage_decay: float = 0.99
    """EMA decay of the running usage p_k and of the replay usage."""
    anchor_eps: float = 1e-3
    """eps in a_k = exp(-p_k K 10 / (1 - usage_decay) - eps) (CVQ-VAE: 1e-3)."""
    dead_usage_threshold: float = 0.01
    """Codes with relative usage p_k * K below this may be re-anchored."""
    protect_threshold: float = 0.5
    """Relative replay usage (EMA of replay share * K) at which a code becomes protected;
    <= 0 disables usage-based protection."""
    novelty_threshold: float = 0.5
    """A feature is novel when its best cosine to the codebook is below this."""
    expand_trigger: float = 0.2
    """Expansion happens when the share of novel new-domain features exceeds this."""
    expand_codes: int = 64
    """dK: codes appended per expansion."""
    max_codes: int = 2048
    """Upper bound of the codebook size."""
    expand_every: int = 100
    """Check for expansion every this many training steps (0: only explicit ``expand_``)."""
    seed: int = 0
    """Seed of k-means and anchor sampling."""

    def __post_init__(self):
        if self.max_codes < self.num_codes:
            raise ValueError(f"max_codes ({self.max_codes}) < num_codes ({self.num_codes})")
        for name in ("decay", "usage_decay"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.expand_codes < 0 or self.expand_every < 0:
            raise ValueError("expand_codes and expand_every must be >= 0")
        if not 0.0 <= self.expand_trigger <= 1.0:
            raise ValueError(f"expand_trigger must be in [0, 1], got {self.expand_trigger}")


class OnlineClusteredCodebook(NormEMACodebook):
    """NormEMA codebook with usage tracking, dead-code re-anchoring, protection and growth.

    Args:
        config: ``OCCConfig`` or its dict.
        all_reduce: sums a tensor over ranks and returns it (default: identity).
        broadcast: returns rank 0's copy of a tensor (default: identity).
    """

    def __init__(
        self,
        config: OCCConfig | Dict[str, Any] | None = None,
        *,
        all_reduce: Collective = identity,
        broadcast: Collective = identity,
    ):
        config = config if isinstance(config, OCCConfig) else OCCConfig.from_dict(config)
        super().__init__(
            config.num_codes,
            config.dim,
            decay=config.decay,
            beta=config.beta,
            eps=config.eps,
            kmeans_init=config.kmeans_init,
            seed=config.seed,
            kmeans_iters=config.kmeans_iters,
            all_reduce=all_reduce,
            broadcast=broadcast,
        )
        self.config = config
        k = config.num_codes
        self.register_buffer("usage", torch.full((k,), 1.0 / k))
        self.register_buffer("replay_usage", torch.zeros(k))
        self.register_buffer("protected", torch.zeros(k, dtype=torch.bool))
        self.register_buffer("num_steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("num_expansions", torch.zeros((), dtype=torch.long))

    @classmethod
    def from_codebook(
        cls, codebook: NormEMACodebook, config: OCCConfig | Dict[str, Any] | None = None, **kwargs
    ) -> "OnlineClusteredCodebook":
        """An OCC starting from a trained NormEMA codebook (e.g. the prior tokenizer T0).

        Code vectors and statistics are copied; running usage starts from the codebook's
        ``cluster_size`` share (uniform when it is all zero). ``config.num_codes`` and
        ``config.dim`` are taken from ``codebook``.
        """
        d = config.to_dict() if isinstance(config, OCCConfig) else dict(config or {})
        config = OCCConfig.from_dict({**d, "num_codes": codebook.num_codes, "dim": codebook.dim})
        occ = cls(config, **kwargs).to(codebook.weight.device)
        result = occ.load_state_dict(codebook.state_dict(), strict=False)
        own = {"usage", "replay_usage", "protected", "num_steps", "num_expansions"}
        wrong = sorted(set(result.missing_keys) - own) + sorted(result.unexpected_keys)
        if wrong:
            raise ValueError(f"codebook state does not fit an OCC; mismatched keys: {wrong}")
        total = codebook.cluster_size.sum()
        if total > 0:
            occ.usage.copy_(codebook.cluster_size / total)
        return occ

    # ------------------------------------------------------------------ statistics
    def dead_codes(self) -> torch.Tensor:
        """Bool [K]: relative usage below ``dead_usage_threshold``."""
        return self.usage * self.num_codes < self.config.dead_usage_threshold

    def usage_perplexity(self) -> torch.Tensor:
        """Scalar: exp of the entropy of the normalised running usage (1..K)."""
        p = self.usage / self.usage.sum().clamp(min=1e-12)
        return torch.exp(-(p * p.clamp(min=1e-12).log()).sum())

    @torch.no_grad()
    def novel_share(self, features: torch.Tensor) -> torch.Tensor:
        """Share (over all ranks) of features [M, d] whose best cosine is below the threshold."""
        stats = self.all_reduce(self._novel_counts(self._novel(l2norm(features.float()))))
        return stats[0] / stats[1].clamp(min=1.0)

    def _novel_counts(self, novel: torch.Tensor) -> torch.Tensor:
        """[2] float on the codebook's device: (novel features, all features), local."""
        return torch.tensor([float(novel.sum()), float(novel.numel())], device=self.weight.device)

    def _novel(self, unit: torch.Tensor) -> torch.Tensor:
        if unit.shape[0] == 0:
            return torch.zeros(0, dtype=torch.bool, device=unit.device)
        return (unit @ self.weight.T).max(dim=1).values < self.config.novelty_threshold

    # ------------------------------------------------------------------ state changes
    @torch.no_grad()
    def protect_codes_(self, codes: torch.Tensor) -> None:
        """Protect the given code ids (any shape; negative ids such as PAD_CODE are skipped)."""
        codes = codes.reshape(-1)
        codes = codes[(codes >= 0) & (codes < self.num_codes)]
        self.protected[codes.to(self.protected.device)] = True

    @torch.no_grad()
    def update_usage_(self, counts: torch.Tensor, replay_counts: torch.Tensor) -> None:
        """EMA of usage shares from global counts [K] (all items) and [K] (replay items)."""
        d = self.config.usage_decay
        total = counts.sum()
        if total > 0:
            self.usage.mul_(d).add_(counts / total, alpha=1.0 - d)
        replay_total = replay_counts.sum()
        if replay_total > 0:
            self.replay_usage.mul_(d).add_(replay_counts / replay_total, alpha=1.0 - d)
            if self.config.protect_threshold > 0:
                self.protected |= self.replay_usage * self.num_codes >= self.config.protect_threshold

    @torch.no_grad()
    def reanchor_(self, features: torch.Tensor) -> int:
        """Move unprotected dead codes toward anchors drawn from features [M, d].

        Returns the number of codes moved (identical on every rank).
        """
        rel = self.usage * self.num_codes
        eligible = (rel < self.config.dead_usage_threshold) & ~self.protected
        idx = eligible.nonzero().squeeze(1)
        n = int(idx.numel())
        if n == 0:
            return 0
        if features.shape[0] > 0:
            g = torch.Generator().manual_seed(derive_seed(self.config.seed, "occ.reanchor", int(self.num_steps)))
            pick = torch.randint(features.shape[0], (n,), generator=g).to(features.device)
            anchors = features[pick].to(self.weight)
        else:  # nothing local to sample: a no-op unless rank 0 supplies anchors
            anchors = self.weight[idx].clone()
        anchors = self.broadcast(anchors)
        alpha = torch.exp(-rel[idx] * 10.0 / (1.0 - self.config.usage_decay) - self.config.anchor_eps)
        mixed = self.weight[idx] * (1.0 - alpha[:, None]) + anchors * alpha[:, None]
        self.embedding.weight[idx] = l2norm(mixed)
        return n

    @torch.no_grad()
    def expand_(self, features: torch.Tensor) -> int:
        """Grow the codebook from new-domain features [M, d] if they are novel enough.

        Returns:
            number of codes appended (0..expand_codes; identical on every rank). The
            new codes take ids ``[K_old, K_old + added)``.
        """
        room = self.config.max_codes - self.num_codes
        if room <= 0 or self.config.expand_codes <= 0:
            return 0
        unit = l2norm(features.float())
        novel = self._novel(unit)
        stats = self.all_reduce(self._novel_counts(novel))
        if stats[1] <= 0 or float(stats[0] / stats[1]) <= self.config.expand_trigger:
            return 0
        n_add = int(min(self.config.expand_codes, room, int(stats[0])))
        seed = derive_seed(self.config.seed, "occ.expand", int(self.num_expansions))
        if novel.any():
            centroids, counts = codebook_kmeans(unit[novel], n_add, seed=seed, iters=self.config.kmeans_iters)
        else:  # no local novel features (another rank had them): rank 0 decides
            g = torch.Generator().manual_seed(seed)
            centroids = l2norm(torch.randn(n_add, self.dim, generator=g))
            counts = torch.zeros(n_add)
        centroids = self.broadcast(centroids.to(self.weight))
        counts = self.broadcast(counts.to(self.weight))
        self._append_codes_(centroids, counts)
        self.num_expansions += 1
        return n_add

    @torch.no_grad()
    def step_(
        self, features: torch.Tensor, codes: torch.Tensor, replay: Optional[torch.Tensor]
    ) -> StepStats:
        """NormEMA update, usage, protection, re-anchoring, periodic expansion."""
        counts = self.update_ema_(features, codes)
        replay = torch.zeros_like(codes, dtype=torch.bool) if replay is None else replay
        replay_counts = torch.bincount(codes[replay], minlength=self.num_codes).to(counts)
        self.update_usage_(counts, self.all_reduce(replay_counts))
        reanchored = self.reanchor_(features)
        self.num_steps += 1
        added = 0
        every = self.config.expand_every
        if every > 0 and int(self.num_steps) % every == 0:
            added = self.expand_(features[~replay])
        return StepStats(counts=counts, added=added, reanchored=reanchored)

    def _append_codes_(self, centroids: torch.Tensor, counts: torch.Tensor) -> None:
        n = centroids.shape[0]
        k_new = self.num_codes + n
        emb = self.embedding
        emb.weight = torch.cat([emb.weight, centroids])
        emb.cluster_size = torch.cat([emb.cluster_size, counts])
        emb.embed_avg = torch.cat([emb.embed_avg, emb.embed_avg.new_zeros(n, self.dim)])
        self.cluster_size = torch.cat([self.cluster_size, self.cluster_size.new_zeros(n)])
        # new codes start at the uniform share so they get a grace period before counting as dead
        self.usage = torch.cat([self.usage, self.usage.new_full((n,), 1.0 / k_new)])
        self.replay_usage = torch.cat([self.replay_usage, self.replay_usage.new_zeros(n)])
        self.protected = torch.cat([self.protected, self.protected.new_zeros(n)])

    def _resize_(self, num_codes: int) -> None:
        """Reallocate every per-code buffer at ``num_codes`` rows (values to be loaded)."""
        emb = self.embedding
        emb.weight = emb.weight.new_zeros(num_codes, self.dim)
        emb.cluster_size = emb.cluster_size.new_zeros(num_codes)
        emb.embed_avg = emb.embed_avg.new_zeros(num_codes, self.dim)
        for name in ("cluster_size", "usage", "replay_usage", "protected"):
            setattr(self, name, getattr(self, name).new_zeros(num_codes))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + "embedding.weight"
        if key in state_dict:
            size = int(state_dict[key].shape[0])
            if size > self.config.max_codes:
                raise ValueError(
                    f"{key}: checkpoint codebook has {size} codes, more than max_codes="
                    f"{self.config.max_codes}"
                )
            if size != self.num_codes:
                self._resize_(size)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
