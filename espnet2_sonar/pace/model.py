"""PooledBackbone: a BeatsEncoder read as one clip-level feature vector, runnable from any layer.

    fbank [B, F, 128] -> BeatsEncoder -> layer ``layer`` [B, N, D] -> mean over valid patches -> [B, D]

``hidden(batch, start)`` returns the (frozen) input of transformer layer ``start`` (0-based),
so layers below the first adapted one run once per clip and are cached;
``pooled_from(hidden, padding_mask, start)`` runs layers ``start..L-1`` (where the LoRA
adapters live) with gradients. Both paths give the same numbers as ``encode_features``.
"""

from dataclasses import dataclass
from typing import List, Optional, Sequence

import torch
from torch import Tensor, nn

from espnet2_sonar.beats.attention import key_padding_bias
from espnet2_sonar.beats.layers import scale_grad
from espnet2_sonar.nn.pooling import pool_layers
from espnet2_sonar.pace.fbanks import FbankBatch, pad_fbanks


@dataclass
class Hidden:
    """Hidden states entering one transformer layer.

    x: [B, N, D]; padding_mask: BoolTensor[B, N] (True = pad, pads at the end of each row).
    """

    x: Tensor
    padding_mask: Tensor


def pool(x: Tensor, padding_mask: Tensor) -> Tensor:
    """Mean over valid patches: [B, N, D], [B, N] -> [B, D]."""
    return pool_layers([x], (~padding_mask).sum(dim=1))[:, 0]


class PooledBackbone(nn.Module):
    """Clip features from a BeatsEncoder.

    Args:
        encoder: a ``BeatsEncoder`` (kept in eval mode: no dropout, no layer drop).
        layer: hidden state to pool, as an index into ``EncoderOutput.layers`` (-1: last).
    """

    def __init__(self, encoder: nn.Module, layer: int = -1):
        super().__init__()
        self.encoder = encoder.eval()
        num = encoder.num_layers
        self.layer = layer if layer >= 0 else num + 1 + layer
        if not 0 <= self.layer <= num:
            raise ValueError(f"layer {layer} out of range for an encoder with {num} layers")

    @property
    def num_layers(self) -> int:
        return self.encoder.num_layers

    @property
    def dim(self) -> int:
        return self.encoder.output_size()

    def train(self, mode: bool = True) -> "PooledBackbone":
        """Always eval mode: adaptation changes parameters, never dropout behaviour."""
        return super().train(False)

    def all_layers(self, batch: FbankBatch) -> List[Tensor]:
        """L + 1 hidden states [B, N, D] (pads zeroed) and sets ``self.last_padding_mask``."""
        out = self.encoder.encode_features(batch.fbank, batch.frame_lengths)
        self.last_padding_mask = out.padding_mask
        return out.layers

    def pooled(self, batch: FbankBatch) -> Tensor:
        """Full forward with gradients: [B, D]."""
        layers = self.all_layers(batch)
        return pool(layers[self.layer], self.last_padding_mask)

    def hidden(self, batch: FbankBatch, start: int) -> Hidden:
        """Input of layer ``start`` (0 <= start <= L; L = the final output)."""
        layers = self.all_layers(batch)
        return Hidden(layers[start], self.last_padding_mask)

    def pooled_from(self, hidden: Hidden, start: int) -> Tensor:
        """Run layers ``start..`` on ``hidden`` (the input of layer ``start``) -> pooled [B, D]."""
        if start > self.layer:
            raise ValueError(f"cannot start at layer {start} past the pooled layer {self.layer}")
        t = self.encoder.encoder
        x, padding_mask = hidden.x, hidden.padding_mask
        key_bias = key_padding_bias(padding_mask, x.dtype) if bool(padding_mask.any()) else None
        position_bias = t.rel_pos(x.shape[1]) if t.rel_pos is not None else None
        for i in range(start, self.layer):
            if t.grad_ratio != 1.0:
                x = scale_grad(x, t.grad_ratio)
            x = t.layers[i](x, position_bias, key_bias)
        if t.layer_norm_first and self.layer == self.num_layers:
            x = t.layer_norm(x)
        return pool(x, padding_mask)

    @torch.no_grad()
    def extract(
        self, fbanks: Sequence[Tensor], batch_size: int = 16, device: str = "cpu", start: Optional[int] = None
    ) -> "Tensor | List[Hidden]":
        """Pooled features [n, D] of every clip, or (``start`` given) each clip's input of layer
        ``start`` as a list of single-clip ``Hidden`` (x [1, N_i, D], unpadded) for caching."""
        order = sorted(range(len(fbanks)), key=lambda i: fbanks[i].shape[0])
        pooled = torch.zeros(len(fbanks), self.dim)
        hiddens: List[Optional[Hidden]] = [None] * len(fbanks)
        for b in range(0, len(order), batch_size):
            idx = order[b : b + batch_size]
            batch = pad_fbanks([fbanks[i] for i in idx]).to(device)
            if start is None:
                pooled[idx] = self.pooled(batch).float().cpu()
                continue
            h = self.hidden(batch, start)
            valid = (~h.padding_mask).sum(dim=1).tolist()
            for j, i in enumerate(idx):
                x = h.x[j : j + 1, : valid[j]].cpu()
                hiddens[i] = Hidden(x, torch.zeros(1, valid[j], dtype=torch.bool))
        return pooled if start is None else hiddens


def pad_hidden(items: Sequence[Hidden]) -> Hidden:
    """Batch single-clip ``Hidden`` states (x [1, N_i, D]) into one padded ``Hidden``."""
    n = max(h.x.shape[1] for h in items)
    x = torch.zeros(len(items), n, items[0].x.shape[-1], dtype=items[0].x.dtype)
    mask = torch.ones(len(items), n, dtype=torch.bool)
    for i, h in enumerate(items):
        x[i, : h.x.shape[1]] = h.x[0]
        mask[i, : h.x.shape[1]] = False
    return Hidden(x, mask)
