"""Colour conversions. The only place that knows about Y / YCbCr.

BT.601 "studio swing" YCbCr with MATLAB ``rgb2ycbcr`` constants: for RGB in
[0, 1], Y is in [16/255, 235/255] and Cb, Cr in [16/255, 240/255].
"""

from __future__ import annotations

import numpy as np

__all__ = ["rgb_to_ycbcr", "ycbcr_to_rgb", "rgb_to_y", "RGB2YCBCR", "YCBCR_OFFSET"]

# Rows: Y, Cb, Cr; columns: R, G, B (for RGB in [0, 1], result in 0-255 units).
RGB2YCBCR = np.array([[65.481, 128.553, 24.966],
                      [-37.797, -74.203, 112.0],
                      [112.0, -93.786, -18.214]], dtype=np.float64)
YCBCR_OFFSET = np.array([16.0, 128.0, 128.0], dtype=np.float64)
YCBCR2RGB = np.linalg.inv(RGB2YCBCR)


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


def rgb_to_ycbcr(image):
    """RGB in [0, 1] -> YCbCr in [0, 1] (Y in [16/255, 235/255]).

    numpy: (..., 3) channels-last. torch: (B, 3, H, W) or (3, H, W).
    """
    if _is_torch(image):
        import torch
        m = torch.as_tensor(RGB2YCBCR / 255.0, dtype=image.dtype, device=image.device)
        off = torch.as_tensor(YCBCR_OFFSET / 255.0, dtype=image.dtype, device=image.device)
        out = torch.einsum("ij,...jhw->...ihw", m, image)
        return out + off.reshape(3, 1, 1)
    img = np.asarray(image, dtype=np.float64)
    return (img @ RGB2YCBCR.T + YCBCR_OFFSET) / 255.0


def ycbcr_to_rgb(image):
    """Inverse of :func:`rgb_to_ycbcr`; no clipping (values may leave [0, 1])."""
    if _is_torch(image):
        import torch
        m = torch.as_tensor(YCBCR2RGB * 255.0, dtype=image.dtype, device=image.device)
        off = torch.as_tensor(YCBCR_OFFSET / 255.0, dtype=image.dtype, device=image.device)
        return torch.einsum("ij,...jhw->...ihw", m, image - off.reshape(3, 1, 1))
    img = np.asarray(image, dtype=np.float64)
    return (img - YCBCR_OFFSET / 255.0) @ (YCBCR2RGB * 255.0).T


def rgb_to_y(image):
    """Luma Y in [16/255, 235/255] from RGB in [0, 1].

    numpy: (..., 3) -> (...). torch: (B, 3, H, W) -> (B, 1, H, W).
    """
    if _is_torch(image):
        import torch
        w = torch.as_tensor(RGB2YCBCR[0] / 255.0, dtype=image.dtype, device=image.device)
        return (image * w.reshape(3, 1, 1)).sum(dim=-3, keepdim=True) + 16.0 / 255.0
    img = np.asarray(image, dtype=np.float64)
    return (img @ RGB2YCBCR[0] + 16.0) / 255.0
