"""RED-Net (Mao et al. 2016): residual encoder-decoder with symmetric skips."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .registry import register
from .blocks import gray_from_rgb
from .spec import ModelSpec


@register("rednet")
class REDNet(nn.Module):
    """``depth`` layers: depth/2 convolutions, then depth/2 transposed convolutions.

    Every second decoder layer adds the matching encoder activation (symmetric
    skips), and the whole network predicts a residual added to its input. With
    ``scale > 1`` it is an SR network on bicubic-upsampled input; with
    ``scale == 1`` a restoration network (denoising, JPEG cleanup). Stride 1
    throughout, so output size equals input size. Input/output (B, C, H, W).

    Two options for restoration, both off by default (the paper's network):

    * ``level_map``: the input carries one extra channel, a constant plane
      holding the degradation level in [0, 1] (FFDNet's noise-level map), so
      the input is (B, C + 1, H, W) and the output (B, C, H, W); the residual
      is added to the first C channels.
    * ``unshuffle = r``: the layers run at 1/r resolution on the
      space-to-depth image (r*r*C channels; FFDNet's trick), which divides the
      cost per pixel by r*r and multiplies the receptive field by r. H and W
      are reflection-padded to multiples of r inside forward; tiled inference
      must align tiles to r (the spec's ``pad_multiple``) to equal whole-image output.
    """

    def __init__(self, scale: int = 1, channels: int = 3, depth: int = 10, width: int = 64,
                 skip_every: int = 2, level_map: bool = False, unshuffle: int = 1):
        super().__init__()
        if depth % 2 or depth < 4:
            raise ValueError("depth must be even and >= 4 (RED10/20/30)")
        if unshuffle < 1:
            raise ValueError("unshuffle must be >= 1")
        self.scale = scale
        self.channels = channels
        self.skip_every = skip_every
        self.level_map = level_map
        self.unshuffle = unshuffle
        half = depth // 2
        # depth 3x3 layers at 1/r resolution, plus the r x r block a pixel sits in.
        radius = depth * unshuffle + unshuffle - 1
        c_io = channels * unshuffle * unshuffle
        c_in = c_io + (1 if level_map else 0)
        # Peak live features per input pixel (sizes tile="auto"): a few maps of the
        # widest layer, at 1/r^2 the pixels on the space-to-depth image.
        floats = 5.0 * max(width, c_in) / (unshuffle * unshuffle)
        self.encoder = nn.ModuleList(
            [nn.Conv2d(c_in if i == 0 else width, width, 3, padding=1) for i in range(half)])
        self.decoder = nn.ModuleList(
            [nn.ConvTranspose2d(width, c_io if i == half - 1 else width, 3, padding=1)
             for i in range(half)])
        self.spec = ModelSpec(scale=scale, scales="any", pre_upsampled=True, channels=channels,
                              level_map=level_map, pad_multiple=unshuffle,
                              receptive_radius=radius, feature_floats_per_pixel=floats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, r = self.channels, self.unshuffle
        img = x[:, :c]
        h0, w0 = x.shape[-2:]
        if r > 1 and (h0 % r or w0 % r):
            x = F.pad(x, (0, -w0 % r, 0, -h0 % r), mode="reflect")
        h = x
        if r > 1:
            h = F.pixel_unshuffle(x[:, :c], r)
            if self.level_map:  # the map is constant per pixel block: one sample per block
                h = torch.cat([h, x[:, c:c + 1, ::r, ::r]], dim=1)
        # a_k = relu(conv_k(a_{k-1})), a_0 = x; the decoder produces b_{k-1} from
        # b_k, mirroring a_{k-1}, and adds a_{k-1} every ``skip_every`` layers.
        half = len(self.encoder)
        skips: dict[int, torch.Tensor] = {}
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
        if r > 1:
            h = F.pixel_shuffle(h, r)[:, :, :h0, :w0]
        return img + h

    def to_gray(self) -> "REDNet":
        """The 1-channel network computing what this RGB one does on a gray image
        (see :func:`kakudai.models.blocks.gray_from_rgb`). Needs ``unshuffle == 1``."""
        if self.unshuffle != 1:
            raise ValueError("to_gray needs a model without space-to-depth")
        return gray_from_rgb(self, "encoder.0", f"decoder.{len(self.decoder) - 1}")
