"""Colour under transparency: what an upscaler must see where nothing is visible.

A transparent pixel's colour is invisible, and editors store anything there (black,
most often). An upscaler mixes each output pixel from its neighbours, so that hidden
colour leaks into the visible edge of every transparent cut-out: a dark fringe
around a sprite or a logo. :func:`fill_transparent` replaces the colour of fully
transparent pixels by the colour of the nearest visible ones (a ring at a time, each
the mean of its already-filled 3x3 neighbours), which changes nothing that can be
seen in the input and removes the fringe from the output.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["fill_transparent"]


def fill_transparent(pixels: np.ndarray, alpha: np.ndarray, rings: int = 32) -> np.ndarray:
    """``pixels`` (H, W, C) as float32 in [0, 1] (integer samples divided by their
    type's peak), with the colour of every pixel whose ``alpha`` (H, W) is 0 replaced
    by that of its visible surroundings, grown ``rings`` pixels out from the visible
    area; pixels farther away get the mean visible colour. Nothing is filled when
    nothing is visible. ``rings`` should reach past the model's receptive field (a
    few tens of pixels for kakudai's networks). Working in float keeps the 8- and
    16-bit versions of one picture the same picture."""
    a = np.asarray(pixels)
    peak = float(np.iinfo(a.dtype).max) if np.issubdtype(a.dtype, np.integer) else 1.0
    x = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32) / peak).permute(2, 0, 1).unsqueeze(0)
    hidden = np.asarray(alpha) == 0
    if hidden.ndim == 3:
        hidden = hidden[:, :, 0]
    if hidden.any() and not hidden.all():
        c = x.shape[1]
        known = torch.from_numpy(~hidden).to(torch.float32)[None, None]
        ones = torch.ones(1, 1, 3, 3)
        with torch.no_grad():
            for _ in range(rings):
                total = F.conv2d(x * known, ones.expand(c, 1, 3, 3), padding=1, groups=c)
                count = F.conv2d(known, ones, padding=1)
                ring = (count > 0) & (known == 0)
                if not ring.any():
                    break
                x = torch.where(ring, total / count.clamp(min=1), x)
                known = known + ring.to(torch.float32)
            rest = known == 0
            if rest.any():  # beyond the rings: the mean visible colour
                mean = (x * (known > 0)).sum(dim=(2, 3), keepdim=True) / (known > 0).sum()
                x = torch.where(rest, mean.expand_as(x), x)
    return np.ascontiguousarray(x[0].permute(1, 2, 0).numpy())
