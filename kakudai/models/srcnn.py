"""SRCNN (Dong et al. 2014): three convolutions on a bicubic-upsampled image."""

from __future__ import annotations

import torch
import torch.nn as nn

from .registry import register
from .spec import ModelSpec, widest_layer_floats


@register("srcnn")
class SRCNN(nn.Module):
    """9-5-5 filters, 64/32 channels (the 9-5-5 row of the published tables).

    Input (B, C, H, W) is the bicubic-upsampled image in [0, 1]; output has the
    same size: reflection padding replaces the paper's 'valid' convolutions so
    the border is predicted too.

    ``offset`` is subtracted from the input and added back to the output, as in
    ESPCN: with reflection padding this equals shifting the first bias by
    ``-offset * sum(W1)`` and the last by ``+offset`` everywhere (tested), so
    it changes where optimisation starts, not what the network can compute.
    """

    def __init__(self, scale: int = 3, channels: int = 1, f1: int = 9, f2: int = 5, f3: int = 5,
                 n1: int = 64, n2: int = 32, offset: float = 0.5):
        super().__init__()
        self.scale = scale
        self.offset = offset
        self.channels = channels
        self.body = nn.Sequential(
            nn.ReflectionPad2d(f1 // 2), nn.Conv2d(channels, n1, f1), nn.ReLU(inplace=True),
            nn.ReflectionPad2d(f2 // 2), nn.Conv2d(n1, n2, f2), nn.ReLU(inplace=True),
            nn.ReflectionPad2d(f3 // 2), nn.Conv2d(n2, channels, f3),
        )
        # The paper's initialisation: small Gaussian weights; the last layer smaller still.
        for m in self.body:
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001 if m.out_channels == channels else 0.05)
                nn.init.zeros_(m.bias)
        self.spec = ModelSpec(scale=scale, scales="any", pre_upsampled=True, channels=channels,
                              receptive_radius=(f1 // 2) + (f2 // 2) + (f3 // 2),
                              feature_floats_per_pixel=widest_layer_floats(self))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x - self.offset) + self.offset
