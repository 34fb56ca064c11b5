"""KSR, kakudai's flagship: a plain residual CNN sized for CPU inference.

Design (see docs/flagship.md for the measurements behind it):

* every layer is a dense 3x3 convolution at low resolution: oneDNN runs these
  at ~160 GFLOP/s on this 2-core machine in channels-last layout, while
  memory-bound ops (1x1 convs, channel splits, attention, concatenations)
  run far below that, so feature distillation and attention are left out;
* EDSR-style residual blocks without normalisation, plus a long skip from the
  head, which makes a deep-narrow body train quickly;
* the upsampler is one 3x3 conv to ``scale^2 * channels`` maps and a pixel
  shuffle, ICNR-initialised so training starts without checkerboards;
* a global skip adds the nearest-neighbour upsampled input (ABPN's "anchor":
  repeating the input ``scale^2`` times before the shuffle), so the network
  only learns the residual at no measurable cost;
* one body can carry several scale-specific tails (MDSR-style multi-scale
  training); :meth:`KSR.for_scale` extracts a single-scale model to ship.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .registry import register
from .blocks import ResBlock, icnr_
from .spec import ModelSpec, widest_layer_floats


class KSR(nn.Module):
    """Flagship SR network. Input (B, C, h, w) in [0, 1] -> (B, C, h*s, w*s).

    ``scale`` is an int, or a list of ints for a multi-scale model whose
    forward takes ``scale=`` to choose the tail. ``channels`` is 1 for a Y-only
    model (chroma is upscaled by bicubic at inference) or 3 for RGB.
    """

    def __init__(self, scale: int | Sequence[int] = 3, channels: int = 1, width: int = 48,
                 blocks: int = 8):
        super().__init__()
        scales = [int(scale)] if isinstance(scale, int) else [int(s) for s in scale]
        self.scales = tuple(scales)
        self.scale = scales[0] if len(scales) == 1 else tuple(scales)
        self.channels = channels
        self.head = nn.Conv2d(channels, width, 3, padding=1)
        self.body = nn.Sequential(*[ResBlock(width) for _ in range(blocks)])
        self.body_end = nn.Conv2d(width, width, 3, padding=1)
        self.tails = nn.ModuleDict({f"x{s}": nn.Conv2d(width, channels * s * s, 3, padding=1)
                                    for s in scales})
        for s in scales:
            icnr_(self.tails[f"x{s}"], s, init=lambda w: nn.init.kaiming_normal_(w, a=1.0))
            with torch.no_grad():
                self.tails[f"x{s}"].weight.mul_(0.1)
        # forward(x, scale=) picks the tail.
        self.spec = ModelSpec(scale=scales[0], scales=self.scales, takes_scale=True, channels=channels,
                              receptive_radius=2 * blocks + 3,
                              feature_floats_per_pixel=widest_layer_floats(self))

    def forward(self, x: torch.Tensor, scale: int | None = None) -> torch.Tensor:
        s = self.scales[0] if scale is None else int(scale)
        if s not in self.scales:
            raise ValueError(f"this model has scales {self.scales}, not {s}")
        f = self.head(x)
        f = f + self.body_end(self.body(f))
        # Anchor skip: each sub-pixel starts from its LR pixel's value.
        r = self.tails[f"x{s}"](f) + x.repeat_interleave(s * s, dim=1)
        return F.pixel_shuffle(r, s)

    def for_scale(self, scale: int) -> "KSR":
        """A single-scale copy with this model's body and the tail for ``scale``."""
        from .registry import create_model
        args = dict(getattr(self, "arch_args", {}))
        args["scale"] = int(scale)
        m = create_model(getattr(self, "arch", "ksr"), **args)
        sd = {k: v for k, v in self.state_dict().items() if not k.startswith("tails.")}
        sd.update({f"tails.x{scale}.{k}": v for k, v in self.tails[f"x{scale}"].state_dict().items()})
        m.load_state_dict(sd)
        return m


register("ksr")(KSR)


@register("ksr-fast")
def ksr_fast(scale: int | Sequence[int] = 3, channels: int = 1, width: int = 48,
             blocks: int = 3) -> KSR:
    """The fast flagship variant for video and large batches: the flagship's width with
    3 residual blocks instead of 8 (~2.3x cheaper). The same width lets it start from the
    flagship's first blocks (configs/ksr-fast.toml, docs/flagship.md)."""
    return KSR(scale=scale, channels=channels, width=width, blocks=blocks)


def rgb_from_luma(model: KSR, scales: Sequence[int] | None = None) -> KSR:
    """An RGB KSR that starts as a trained Y-only one: the luma of its output is the
    Y model's output on the input's luma (exactly, away from a border band as wide
    as the receptive field, where the zero padding of the first layer differs).

    The head reads Y = k . rgb + 16/255 (BT.601, :data:`kakudai.ops.color.RGB2YCBCR`),
    so its weights become ``W * k_c`` per input channel with the offset folded into
    the bias; each tail adds the Y residual divided by ``sum(k)`` to every channel,
    which changes the output's luma by exactly that residual. Chroma starts as the
    anchor (nearest) plus a grey residual; training on colour refines it.
    ``scales``: the tails to keep (default: all of ``model``'s).
    """
    from ..ops.color import RGB2YCBCR
    from .registry import create_model
    if model.channels != 1:
        raise ValueError(f"expected a Y-only (1-channel) model, got {model.channels} channels")
    keep = tuple(model.scales if scales is None else (int(s) for s in scales))
    missing = [s for s in keep if s not in model.scales]
    if missing:
        raise ValueError(f"the model has scales {model.scales}, not {missing}")
    args = dict(getattr(model, "arch_args", {}))
    args.update(channels=3, scale=list(keep) if len(keep) > 1 else keep[0])
    rgb = create_model(getattr(model, "arch", "ksr"), **args)
    k = torch.tensor(RGB2YCBCR[0] / 255.0, dtype=torch.float32)
    sd = {key: v for key, v in model.state_dict().items()
          if not key.startswith(("head.", "tails."))}
    w, b = model.head.weight.detach(), model.head.bias.detach()
    sd["head.weight"] = torch.cat([w * kc for kc in k], dim=1)
    sd["head.bias"] = b + (16.0 / 255.0) * w.sum(dim=(1, 2, 3))
    for s in keep:
        tail = model.tails[f"x{s}"]
        sd[f"tails.x{s}.weight"] = (tail.weight.detach() / k.sum()).repeat(3, 1, 1, 1)
        sd[f"tails.x{s}.bias"] = (tail.bias.detach() / k.sum()).repeat(3)
    rgb.load_state_dict(sd)
    return rgb
