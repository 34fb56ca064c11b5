"""Bicubic interpolation as a model: the baseline row of every table."""

from __future__ import annotations

import torch
import torch.nn as nn

from ..ops.resize import imresize_torch
from .registry import register
from .spec import ModelSpec, widest_layer_floats


@register("bicubic")
class Bicubic(nn.Module):
    """MATLAB-compatible bicubic upscaling, no parameters. (B, C, h, w) -> (B, C, h*s, w*s)."""

    def __init__(self, scale: float = 3, channels: int = 3):
        super().__init__()
        self.scale = scale
        self.channels = channels
        self.spec = ModelSpec(scale=scale, scales="any", takes_scale=True, channels=channels,
                              receptive_radius=2,  # the cubic kernel reaches 2 input pixels each side
                              feature_floats_per_pixel=widest_layer_floats(self))

    def forward(self, x: torch.Tensor, scale: float | tuple[float, float] | None = None) -> torch.Tensor:
        s = self.scale if scale is None else scale  # a float, or per-axis (s_h, s_w)
        return imresize_torch(x, scale=tuple(map(float, s)) if isinstance(s, (tuple, list)) else float(s))
