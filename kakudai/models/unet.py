"""A residual U-Net restorer: RED-Net's symmetric skips, on a pyramid.

RED-Net (``rednet.py``) keeps every layer at full resolution, so its reach
grows by one pixel per layer and every layer costs the same. This network
halves the resolution between levels (DRUNet's layout: residual blocks, no
normalisation, strided 2x2 convolutions down, transposed 2x2 up, skips added
as in RED-Net), so the deeper levels cost a quarter as much per pixel each
and see twice as far. With widths (32, 64, 128) and 2 blocks per level and
side it costs ~194k multiply-adds per pixel (RED10 width 64: ~298k) and
reaches ~50 pixels (RED10: 10).

Same conventions as RED-Net: input (B, C[+1], H, W) with the optional
level-map plane last, output (B, C, H, W) = image + predicted residual; with
``scale > 1`` it is an SR network on bicubic-upsampled input (``scale == 1``:
restoration). H and W are reflection-padded to multiples of the spec's ``pad_multiple``
inside forward; tiled inference aligns tiles to it, so tiled output equals
whole-image output.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .registry import register
from .blocks import ResBlock, gray_from_rgb
from .spec import ModelSpec


def _stage(width: int, blocks: int) -> nn.Sequential:
    return nn.Sequential(*[ResBlock(width) for _ in range(blocks)])


@register("unet")
class ResUNet(nn.Module):
    """``len(widths)`` levels; level i runs at 1/2^i resolution with ``widths[i]`` channels,
    ``blocks`` residual blocks on the way down and as many on the way up (the
    last level once, as the bottleneck)."""

    def __init__(self, scale: int = 1, channels: int = 3, widths: Sequence[int] = (32, 64, 128),
                 blocks: int = 2, level_map: bool = False):
        super().__init__()
        widths = [int(w) for w in widths]
        if len(widths) < 2 or blocks < 1:
            raise ValueError("need at least two levels and one block per level")
        self.scale = scale
        self.channels = channels
        self.level_map = level_map
        levels = len(widths)
        self.block = 2 ** (levels - 1)  # the pyramid's block side: H and W are padded to it
        # Reach in input pixels: 2 convs per block at 2^i px per tap, 1 px for each
        # strided / transposed 2x2 at 2^i, plus head and tail; one multiple more
        # for the padding to the block grid.
        reach = 2 + sum(2 * (2 * blocks * 2 ** i + 2 ** i) for i in range(levels - 1))
        radius = reach + 2 * blocks * 2 ** (levels - 1) + self.block
        # Peak live features per input pixel (sizes tile="auto"): the current map, a
        # block's two temporaries and the skip at each level, at 1/4^i the pixels.
        floats = sum(4.0 * w / 4 ** i for i, w in enumerate(widths))
        self.head = nn.Conv2d(channels + (1 if level_map else 0), widths[0], 3, padding=1)
        self.down_stages = nn.ModuleList(_stage(w, blocks) for w in widths[:-1])
        self.downs = nn.ModuleList(nn.Conv2d(a, b, 2, stride=2) for a, b in zip(widths[:-1], widths[1:]))
        self.middle = _stage(widths[-1], blocks)
        self.ups = nn.ModuleList(nn.ConvTranspose2d(b, a, 2, stride=2) for a, b in zip(widths[:-1], widths[1:]))
        self.up_stages = nn.ModuleList(_stage(w, blocks) for w in widths[:-1])
        self.tail = nn.Conv2d(widths[0], channels, 3, padding=1)
        with torch.no_grad():  # start near the identity map (a small residual)
            self.tail.weight.mul_(0.1)
            self.tail.bias.zero_()
        self.spec = ModelSpec(scale=scale, scales="any", pre_upsampled=True, channels=channels,
                              level_map=level_map, pad_multiple=self.block,
                              receptive_radius=radius, feature_floats_per_pixel=floats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, m = self.channels, self.block
        img = x[:, :c]
        h0, w0 = x.shape[-2:]
        if h0 % m or w0 % m:
            x = F.pad(x, (0, -w0 % m, 0, -h0 % m), mode="reflect")
        h = self.head(x)
        skips = []
        for stage, down in zip(self.down_stages, self.downs):
            h = stage(h)
            skips.append(h)
            h = down(h)
        h = self.middle(h)
        for i in reversed(range(len(self.ups))):
            h = self.up_stages[i](self.ups[i](h) + skips[i])
        return img + self.tail(h)[:, :, :h0, :w0]

    def to_gray(self) -> "ResUNet":
        """The 1-channel network computing what this RGB one does on a gray image."""
        return gray_from_rgb(self, "head", "tail")

