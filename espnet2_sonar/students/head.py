"""Mapping head: student embedding -> teacher embedding space (S-SONDO).

    [B, D_s] -> Linear(D_s, hidden) -> Hardswish -> Dropout(p) -> Linear(hidden, D_t) -> [B, D_t]

Used in training only; the exported student keeps it so that teacher-space embeddings
stay available, but the probe reads the student's own hidden states by default.
"""

from torch import Tensor, nn


class MappingHead(nn.Module):
    """Two-layer projection into the teacher's embedding space.

    Args:
        input_size: student embedding width D_s.
        output_size: teacher embedding width D_t.
        hidden_size: hidden width (768 or 1280 in S-SONDO).
        dropout: dropout after the Hardswish (0.2 in S-SONDO).
    """

    def __init__(self, input_size: int, output_size: int, hidden_size: int = 768, dropout: float = 0.2):
        super().__init__()
        if min(input_size, output_size, hidden_size) < 1:
            raise ValueError(f"sizes must be >= 1, got {input_size}, {hidden_size}, {output_size}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.input_size, self.output_size = input_size, output_size
        self.net = nn.Sequential(
            nn.Linear(input_size, hidden_size),
            nn.Hardswish(),
            nn.Dropout(dropout),
            nn.Linear(hidden_size, output_size),
        )

    def forward(self, x: Tensor) -> Tensor:
        """x [B, D_s] -> [B, D_t]."""
        if x.shape[-1] != self.input_size:
            raise ValueError(f"MappingHead expects [..., {self.input_size}], got {tuple(x.shape)}")
        return self.net(x)
