"""RED-Net (Mao et al. 2016): residual encoder-decoder with symmetric skips."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..registry import register


@register("rednet")
class REDNet(nn.Module):
    """``depth`` layers: depth/2 convolutions, then depth/2 transposed convolutions.

    Every second decoder layer adds the matching encoder activation (symmetric
    skips), and the whole network predicts a residual added to its input. With
    ``scale > 1`` it is an SR network on bicubic-upsampled input; with
    ``scale == 1`` a restoration network (denoising, JPEG cleanup). Stride 1
    throughout, so output size equals input size. Input/output (B, C, H, W).
    """

    pre_upsampled = True
    pad_multiple = 1

    def __init__(self, scale: int = 1, channels: int = 3, depth: int = 10, width: int = 64,
                 skip_every: int = 2):
        super().__init__()
        if depth % 2 or depth < 4:
            raise ValueError("depth must be even and >= 4 (RED10/20/30)")
        self.scale = scale
        self.channels = channels
        self.skip_every = skip_every
        half = depth // 2
        self.receptive_radius = depth
        self.encoder = nn.ModuleList(
            [nn.Conv2d(channels if i == 0 else width, width, 3, padding=1) for i in range(half)])
        self.decoder = nn.ModuleList(
            [nn.ConvTranspose2d(width, channels if i == half - 1 else width, 3, padding=1)
             for i in range(half)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # a_k = relu(conv_k(a_{k-1})), a_0 = x; the decoder produces b_{k-1} from
        # b_k, mirroring a_{k-1}, and adds a_{k-1} every ``skip_every`` layers.
        half = len(self.encoder)
        skips: dict[int, torch.Tensor] = {}
        h = x
        for k, conv in enumerate(self.encoder, start=1):
            h = F.relu(conv(h))
            if k < half and k % self.skip_every == 0:
                skips[k] = h
        for i, deconv in enumerate(self.decoder):
            k = half - 1 - i  # index of the activation this layer mirrors
            h = deconv(h)
            if k > 0:
                if k in skips:
                    h = h + skips[k]
                h = F.relu(h)
        return x + h
