"""ESPCN (Shi et al. 2016): features at low resolution, sub-pixel convolution last."""

from __future__ import annotations

import torch
import torch.nn as nn

from .registry import register
from .blocks import Upsampler
from .spec import ModelSpec, widest_layer_floats


@register("espcn")
class ESPCN(nn.Module):
    """5-3-3 filters, 64/32 channels, tanh, then a sub-pixel convolution.

    The last layer is ICNR-initialised (``upsampler="subpixel"``), so the
    untrained network is free of checkerboard artifacts. Input (B, C, h, w) in
    [0, 1], output (B, C, h*scale, w*scale).

    ``offset`` is subtracted from the input and added back to the output. It is
    a reparameterisation, not a change of architecture: away from the image
    border it equals shifting the first layer's bias by ``-offset * sum(W1)``
    and the last one's by ``+offset`` (tests/test_models.py proves it); at the
    border the zero padding reads as mid-grey rather than black. The tanh
    layers then start zero-centred and the untrained output mid-grey.
    """

    def __init__(self, scale: int = 3, channels: int = 1, n1: int = 64, n2: int = 32,
                 upsampler: str = "subpixel", offset: float = 0.5):
        super().__init__()
        self.scale = scale
        self.offset = offset
        self.channels = channels
        self.features = nn.Sequential(
            nn.Conv2d(channels, n1, 5, padding=2), nn.Tanh(),
            nn.Conv2d(n1, n2, 3, padding=1), nn.Tanh(),
        )
        self.upsample = Upsampler(upsampler, n2, channels, scale, kernel=3)
        self.spec = ModelSpec(scale=scale, scales=(scale,), channels=channels,
                              receptive_radius=2 + 1 + 1,
                              feature_floats_per_pixel=widest_layer_floats(self))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.upsample(self.features(x - self.offset)) + self.offset
