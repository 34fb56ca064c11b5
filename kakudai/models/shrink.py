"""The "integer-then-shrink" baseline for non-integer scales, as a model.

What tools without an arbitrary-scale model do (waifu2x, Real-ESRGAN users):
upscale with the next larger integer scale a fixed-scale model has, then
resize down to the target with MATLAB bicubic. ``kakudai eval --model
ksr+shrink --scale 2.5`` scores it with the same protocol as any model, so the
implicit model's gain over it is one command. Not registered (it has no
weights of its own): :func:`kakudai.zoo.load_model` builds it for any
``NAME+shrink``.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn as nn

from ..ops.resize import imresize_torch
from .calling import model_forward
from .spec import ModelSpec, require_spec

__all__ = ["IntegerThenShrink", "integer_scale", "shrink_from_integer"]


def integer_scale(scale: float | tuple[float, float]) -> int:
    """The integer scale upscaled to first: the next one at or above ``scale`` (its larger axis)."""
    s = max(scale) if isinstance(scale, (tuple, list)) else float(scale)
    return max(1, math.ceil(s - 1e-9))


def shrink_from_integer(y: torch.Tensor, n: int, scale: float | tuple[float, float],
                        out_hw: tuple[int, int] | None = None) -> torch.Tensor:
    """``y`` (B, C, H, W), an image upscaled by the integer ``n``, brought to ``scale``
    by MATLAB bicubic at scale / n (per axis for a pair). ``out_hw``, when given, is
    the size the result must have: float round-off in the size rule is resized to it."""
    if out_hw is not None and tuple(y.shape[-2:]) == tuple(out_hw):
        return y
    if isinstance(scale, (tuple, list)):
        ratio: float | tuple[float, float] = (float(scale[0]) / n, float(scale[1]) / n)
    else:
        ratio = float(scale) / n
        if ratio == 1.0:
            return y
    z = imresize_torch(y, scale=ratio)
    if out_hw is not None and tuple(z.shape[-2:]) != tuple(out_hw):
        z = imresize_torch(y, size=out_hw)
    return z


class IntegerThenShrink(nn.Module):
    """(B, C, h, w) -> (B, C, ceil(h*s), ceil(w*s)): ``base`` at n = ceil(s), then
    MATLAB bicubic by s / n (so the size and sampling follow MATLAB's rule for s).

    ``load(n)`` returns the fixed-scale model for integer scale n (called once
    per n, lazily); ``first`` is the one for the scale the wrapper is built for,
    which fixes ``channels``.
    """

    def __init__(self, load: Callable[[int], nn.Module], first_scale: float, name: str = ""):
        super().__init__()
        self._load = load
        self.name = name
        self.scale = float(first_scale)
        n = self.integer_scale(first_scale)
        self._bases = nn.ModuleDict({str(n): load(n)})
        base = require_spec(self._bases[str(n)], f"the base of {name or 'integer-then-shrink'}")
        self.channels = base.channels
        # The shrink's kernel reaches ~2 output pixels of the base = under 2 input pixels.
        self.spec = ModelSpec(scale=self.scale, scales="any", takes_scale=True, channels=base.channels,
                              receptive_radius=base.receptive_radius + 2,
                              feature_floats_per_pixel=base.feature_floats_per_pixel)

    integer_scale = staticmethod(integer_scale)

    def base(self, n: int) -> nn.Module:
        if str(n) not in self._bases:
            self._bases[str(n)] = self._load(n)
        return self._bases[str(n)]

    def forward(self, x: torch.Tensor, scale: float | tuple[float, float] | None = None) -> torch.Tensor:
        s = self.scale if scale is None else scale
        n = self.integer_scale(s)
        return shrink_from_integer(model_forward(self.base(n), x, n), n, s)
