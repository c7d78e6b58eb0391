"""Seeded SpecAugment: frequency-band and time-span masking of padded features [B, T, F].

``SpecAugment`` is an ESPnet ``AbsSpecAug``: ``forward(x, x_lengths) -> (x, x_lengths)``,
x [B, T, F] (frames x bins), x_lengths [B] valid frames per item (None: all T frames).
Every caller in the toolkit masks through it (DECAR's training augmentation, PACE's
boundary-set copies).

Draws. Item b, with L_b = min(x_lengths[b], T) valid frames, gets ``freq_masks`` frequency
masks and ``time_masks`` time masks. Each mask takes two uniforms u_w, u_s ~ U[0, 1):

    width = min(floor(u_w * (max_width_b + 1)), extent_b)   i.e. width ~ U{0..max_width_b}
    start = floor(u_s * (extent_b - width + 1))             i.e. start ~ U{0..extent_b - width}

with extent_b = F and max_width_b = ``freq_mask_width`` for frequency masks, and
extent_b = L_b and max_width_b = ``time_mask_width`` frames or floor(``time_mask_ratio`` * L_b)
for time masks. The uniforms come from two calls on a CPU ``torch.Generator``,
``rand(B, freq_masks, 2)`` then ``rand(B, time_masks, 2)`` (a mask family with count 0 draws
nothing; a config with no effective mask draws nothing at all), so the masks depend only on
the generator state, B, F and the lengths: never on the padded size T or the device.

Lengths rule. Masks cover valid frames only: time masks lie inside [0, L_b) and their width
bound is computed from L_b; frequency masks span frames [0, L_b) only. Padded frames are
returned unchanged and never count. Hence the output inside the lengths is a function of the
input inside the lengths, the lengths and the generator state (padding invariance), and an
item of length 0 is returned unchanged. Masked cells are set to ``fill`` (0 = the mean of
normalised features).

Seeding. ``forward`` draws from its ``generator`` argument when one is given (callers that
derive a stream per step, e.g. DECAR's (seed, step)); otherwise from the module's own
generator, seeded with ``seed`` at construction: the same seed gives the same sequence of masks.
"""

from dataclasses import dataclass
from typing import Optional, Tuple

import torch
from torch import Tensor

from espnet2.asr.specaug.abs_specaug import AbsSpecAug

from espnet2_sonar.nn.masks import valid_mask
from espnet2_sonar.utils.config import StrictConfig


@dataclass
class SpecAugmentConfig(StrictConfig):
    """Mask counts and width bounds (see module docstring); all widths are upper bounds."""

    freq_masks: int = 2
    """Frequency masks per item (0: none)."""
    freq_mask_width: int = 8
    """Largest frequency-mask width, bins."""
    time_masks: int = 2
    """Time masks per item (0: none)."""
    time_mask_width: int = 0
    """Largest time-mask width in frames; set this or ``time_mask_ratio``, not both."""
    time_mask_ratio: float = 0.1
    """Largest time-mask width as a share of the item's valid frames."""
    fill: float = 0.0
    """Value of masked cells."""

    def __post_init__(self):
        if min(self.freq_masks, self.freq_mask_width, self.time_masks, self.time_mask_width) < 0:
            raise ValueError(f"SpecAugment mask counts and widths must be >= 0: {self}")
        if not 0.0 <= self.time_mask_ratio < 1.0:
            raise ValueError(f"SpecAugment time_mask_ratio must be in [0, 1), got {self.time_mask_ratio}")
        if self.time_mask_width > 0 and self.time_mask_ratio > 0:
            raise ValueError(
                "SpecAugment: set time_mask_width (frames) or time_mask_ratio (share of valid frames), "
                f"not both; got {self.time_mask_width} and {self.time_mask_ratio}"
            )

    @property
    def active(self) -> bool:
        """Whether any mask can have a nonzero width."""
        freq = self.freq_masks > 0 and self.freq_mask_width > 0
        time = self.time_masks > 0 and (self.time_mask_width > 0 or self.time_mask_ratio > 0)
        return freq or time


@dataclass
class MaskSpans:
    """n spans per item: item b covers [start[b, k], start[b, k] + width[b, k]) for each k.

    start, width: LongTensor[B, n] on the CPU.
    """

    start: Tensor
    width: Tensor

    def cover(self, size: int) -> Tensor:
        """BoolTensor[B, size]: positions covered by any of the item's spans."""
        pos = torch.arange(size)[None, None, :]
        inside = (pos >= self.start[..., None]) & (pos < (self.start + self.width)[..., None])  # [B, n, size]
        return inside.any(dim=1)


def _spans(n: int, max_width: Tensor, extent: Tensor, generator: torch.Generator) -> MaskSpans:
    """n spans per item: width ~ U{0..max_width[b]} (at most extent[b]), start ~ U{0..extent[b] - width}."""
    bsz = extent.shape[0]
    if n == 0:
        empty = torch.zeros(bsz, 0, dtype=torch.long)
        return MaskSpans(empty, empty)
    u = torch.rand(bsz, n, 2, generator=generator)
    width = (u[..., 0] * (max_width[:, None] + 1).float()).floor().long().minimum(extent[:, None])
    start = (u[..., 1] * (extent[:, None] - width + 1).float()).floor().long()
    return MaskSpans(start, width)


class SpecAugment(AbsSpecAug):
    """Seeded SpecAugment (see module docstring).

    Args:
        config: ``SpecAugmentConfig`` or its dict.
        seed: seeds the module's own generator, used when ``forward`` gets none.
    """

    def __init__(self, config: SpecAugmentConfig | dict | None = None, seed: int = 0):
        super().__init__()
        self.config = config if isinstance(config, SpecAugmentConfig) else SpecAugmentConfig.from_dict(config)
        self.generator = torch.Generator().manual_seed(seed)

    @property
    def active(self) -> bool:
        return self.config.active

    def spans(self, lengths: Tensor, num_bins: int, generator: torch.Generator) -> Tuple[MaskSpans, MaskSpans]:
        """(frequency spans over bins, time spans over frames) drawn for valid frames ``lengths`` [B]."""
        cfg = self.config
        lengths = lengths.detach().cpu().long().clamp(min=0)
        bsz = lengths.shape[0]
        bins = torch.full((bsz,), num_bins, dtype=torch.long)
        freq = _spans(cfg.freq_masks, torch.full((bsz,), cfg.freq_mask_width, dtype=torch.long), bins, generator)
        if cfg.time_mask_ratio > 0:
            time_width = (lengths.float() * cfg.time_mask_ratio).floor().long()
        else:
            time_width = torch.full((bsz,), cfg.time_mask_width, dtype=torch.long)
        time = _spans(cfg.time_masks, time_width, lengths, generator)
        return freq, time

    def forward(
        self, x: Tensor, x_lengths: Optional[Tensor] = None, generator: Optional[torch.Generator] = None
    ) -> Tuple[Tensor, Optional[Tensor]]:
        """x [B, T, F], x_lengths [B] or None -> (masked copy [B, T, F], x_lengths).

        ``generator``: a CPU ``torch.Generator`` to draw from (None: the module's own).
        """
        if x.dim() != 3:
            raise ValueError(f"SpecAugment expects x [B, T, F], got {tuple(x.shape)}")
        if not self.active:
            return x, x_lengths
        bsz, frames, bins = x.shape
        lengths = torch.full((bsz,), frames) if x_lengths is None else x_lengths.detach().cpu().long()
        if lengths.shape != (bsz,):
            raise ValueError(f"SpecAugment: x_lengths must be [{bsz}], got {tuple(lengths.shape)}")
        lengths = lengths.clamp(max=frames)
        freq, time = self.spans(lengths, bins, self.generator if generator is None else generator)
        cells = time.cover(frames)[:, :, None] | freq.cover(bins)[:, None, :]  # [B, T, F]
        cells &= valid_mask(lengths, frames)[:, :, None]
        return x.masked_fill(cells.to(x.device), self.config.fill), x_lengths
