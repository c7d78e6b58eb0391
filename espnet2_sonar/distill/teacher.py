"""Frozen teachers: a module that never trains, never leaves eval mode, never builds a graph."""

import torch
from torch import nn


class FrozenTeacher(nn.Module):
    """Wrap ``module`` so it stays frozen (``requires_grad=False``) and in eval mode.

    ``train(True)`` on a parent model does not switch the teacher to training mode, so
    dropout and codebook updates never run in it. Calls run under ``torch.no_grad()``.
    Its parameters are saved with the parent's state_dict (buffers travel too), so a
    resumed run uses the same teacher.
    """

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.module.eval()

    def train(self, mode: bool = True) -> "FrozenTeacher":
        # Ignore the mode: a teacher is always in eval mode.
        super().train(False)
        self.module.eval()
        return self

    def forward(self, method: str, *args, **kwargs):
        """Call ``self.module.<method>(*args, **kwargs)`` without gradient."""
        with torch.no_grad():
            return getattr(self.module, method)(*args, **kwargs)
