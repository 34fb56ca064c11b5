"""The guided filter (He, Sun and Tang, 2010): edge-preserving smoothing steered by a guide.

Used to clean the chroma of degraded images: a Y-only network restores luma, and
the chroma planes (bicubic-enlarged, still carrying colour noise and 4:2:0 JPEG
blocks) are filtered with the restored luma as the guide, so colour edges stay
where luma edges are while colour noise inside regions is averaged away.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["box_mean", "guided_filter"]


def box_mean(x: torch.Tensor, r: int) -> torch.Tensor:
    """Mean over the (2r+1)^2 window of each pixel of (B, C, H, W), mirrored borders."""
    mode = "reflect" if min(x.shape[-2:]) > r else "replicate"
    return F.avg_pool2d(F.pad(x, (r, r, r, r), mode=mode), 2 * r + 1, stride=1)


def guided_filter(guide: torch.Tensor, src: torch.Tensor, r: int, eps: float) -> torch.Tensor:
    """Filter ``src`` (B, C, H, W) with the one-channel ``guide`` (B, 1, H, W), same size.

    Locally, out = a * guide + b, fitted in each (2r+1)^2 window by least squares with
    ridge ``eps`` on a (values in [0, 1]: eps ~ the variance of the noise to remove).
    Where the guide is flat the output is the window mean of ``src``; where the guide
    has an edge stronger than sqrt(eps), ``src`` follows it. A pixel depends on
    inputs up to 2r away.
    """
    mean_i = box_mean(guide, r)
    mean_p = box_mean(src, r)
    var_i = box_mean(guide * guide, r) - mean_i * mean_i
    cov_ip = box_mean(guide * src, r) - mean_i * mean_p
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box_mean(a, r) * guide + box_mean(b, r)
