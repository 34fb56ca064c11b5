"""The tensor-level super-resolution pipeline shared by eval, upscale, web and video.

``super_resolve`` turns an RGB or gray batch in [0, 1] into its upscaled
version with any registered model, handling what the model declares:
Y-only models (chroma by MATLAB bicubic), pre-upsampled inputs, gray images,
and tiling. Everything above it (files, modes, metadata) lives in data/io.py
and the API module.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn as nn

from ..ops.color import rgb_to_ycbcr, ycbcr_to_rgb
from ..ops.resize import imresize_torch
from .tiling import tiled_apply

__all__ = ["super_resolve", "model_forward", "pipeline_radius"]

Y_LO, Y_SPAN = 16.0 / 255.0, 219.0 / 255.0


def model_forward(model: nn.Module, x: torch.Tensor, scale: float) -> torch.Tensor:
    """Run the bare network at ``scale`` (bicubic pre-upsampling if it needs it)."""
    if getattr(model, "pre_upsampled", False):
        x = imresize_torch(x, scale=float(scale))
        return model(x)
    if getattr(model, "takes_scale", False):
        return model(x, scale=scale)
    if getattr(model, "scale", scale) != scale:
        raise ValueError(f"model is for x{model.scale}, not x{scale}")
    return model(x)


def _tta_forward(model: nn.Module, x: torch.Tensor, scale: float) -> torch.Tensor:
    """x8 geometric self-ensemble: flips and transposes, undone and averaged."""
    acc = None
    for t in range(8):
        xt = x
        if t & 4:
            xt = xt.transpose(-1, -2)
        if t & 2:
            xt = xt.flip(-1)
        if t & 1:
            xt = xt.flip(-2)
        y = model_forward(model, xt, scale)
        if t & 1:
            y = y.flip(-2)
        if t & 2:
            y = y.flip(-1)
        if t & 4:
            y = y.transpose(-1, -2)
        acc = y if acc is None else acc + y
    return acc / 8.0


def _network(model: nn.Module, x: torch.Tensor, scale: float, tta: bool) -> torch.Tensor:
    return _tta_forward(model, x, scale) if tta else model_forward(model, x, scale)


def pipeline_radius(model: nn.Module, scale: float) -> int:
    """Input pixels of context that one output pixel depends on, pipeline included."""
    r = int(getattr(model, "receptive_radius", 0))
    if getattr(model, "pre_upsampled", False):
        r = math.ceil(r / scale)
    return r + 2  # +2: the bicubic kernel used for pre-upsampling and chroma


def _sr_untiled(model: nn.Module, x: torch.Tensor, scale: float, tta: bool) -> torch.Tensor:
    model_ch = int(getattr(model, "channels", 3))
    c = x.shape[1]
    if model_ch == 1:
        if c == 1:  # gray image: map to the Y range the model was trained on, and back
            y = _network(model, x * Y_SPAN + Y_LO, scale, tta)
            return (y - Y_LO) / Y_SPAN
        ycc = rgb_to_ycbcr(x)
        y = _network(model, ycc[:, :1], scale, tta)
        chroma = imresize_torch(ycc[:, 1:], scale=float(scale))
        return ycbcr_to_rgb(torch.cat([y, chroma], dim=1))
    if c == 1 and model_ch == 3:
        return _network(model, x.expand(-1, 3, -1, -1), scale, tta).mean(dim=1, keepdim=True)
    return _network(model, x, scale, tta)


@torch.inference_mode()
def super_resolve(model: nn.Module, x: torch.Tensor, scale: float, tile: int | None = None,
                  tta: bool = False, out_dtype: torch.dtype | None = None,
                  on_tile: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """Upscale a batch (B, C, h, w), C = 1 (gray) or 3 (RGB), values in [0, 1].

    Returns (B, C, H, W) with H = h*scale: float clipped to [0, 1], or quantised to
    ``out_dtype`` (torch.uint8 / torch.int32 holding 16-bit) tile by tile.
    ``tile`` is the core tile size in input pixels (None: whole image).
    """
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"expected (B, 1|3, H, W), got {tuple(x.shape)}")
    model.eval()
    fn = lambda t: _sr_untiled(model, t, scale, tta).clamp_(0, 1)  # noqa: E731
    return tiled_apply(fn, x, int(scale) if float(scale).is_integer() else scale, tile,
                       overlap=pipeline_radius(model, scale), out_dtype=out_dtype, on_tile=on_tile)


def upscale_array(arr, scale: float, model: "nn.Module | str" = "default", tile: int | None = None,
                  tta: bool = False):
    """Upscale an image array: uint8/uint16/float (H, W) or (H, W, 3); same dtype out."""
    import numpy as np

    from ..checkpoint import load_model
    if isinstance(model, str):
        model = load_model(model, scale)
    a = np.asarray(arr)
    if a.dtype == np.uint8:
        x, peak, out_dtype = a.astype(np.float32) / 255.0, 255.0, torch.uint8
    elif a.dtype == np.uint16:
        x, peak, out_dtype = a.astype(np.float32) / 65535.0, 65535.0, None
    else:
        x, peak, out_dtype = a.astype(np.float32), None, None
    gray = x.ndim == 2
    t = torch.from_numpy(np.ascontiguousarray(x[:, :, None] if gray else x)).permute(2, 0, 1)[None]
    y = super_resolve(model, t, scale, tile=tile, tta=tta, out_dtype=out_dtype)
    out = y[0].permute(1, 2, 0).numpy()
    if gray:
        out = out[:, :, 0]
    if a.dtype == np.uint16:
        return np.round(out * peak).astype(np.uint16)
    return out.astype(a.dtype) if a.dtype != np.uint8 else out
