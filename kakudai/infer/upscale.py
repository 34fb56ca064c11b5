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
from .tiling import auto_tile_size, tiled_apply

__all__ = ["super_resolve", "model_forward", "pipeline_radius", "tile_multiple", "bytes_per_input_pixel",
           "model_device", "upscale_array"]

Y_LO, Y_SPAN = 16.0 / 255.0, 219.0 / 255.0


def _scale_arg(scale) -> float | tuple[float, float]:
    """A scale as imresize takes it: a float, or a per-axis (s_h, s_w) pair (``--size``)."""
    return (float(scale[0]), float(scale[1])) if isinstance(scale, (tuple, list)) else float(scale)


def model_forward(model: nn.Module, x: torch.Tensor, scale: float) -> torch.Tensor:
    """Run the bare network at ``scale`` (bicubic pre-upsampling if it needs it)."""
    if getattr(model, "pre_upsampled", False):
        x = imresize_torch(x, scale=_scale_arg(scale))
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
        s = _scale_arg(scale)
        r = math.ceil(r / (min(s) if isinstance(s, tuple) else s))
    return r + 2  # +2: the bicubic kernel used for pre-upsampling and chroma


def tile_multiple(model: nn.Module, scale: float) -> int:
    """The block side, in input pixels, that tiles must align to (see
    :func:`~kakudai.infer.tiling.tiled_apply`): the model's ``pad_multiple``, which
    a pre-upsampled model counts on the upsampled image, so at an integer scale s
    a block of ``pad_multiple / gcd(pad_multiple, s)`` input pixels is enough."""
    m = int(getattr(model, "pad_multiple", 1))
    s = _scale_arg(scale)
    if m > 1 and getattr(model, "pre_upsampled", False) and not isinstance(s, tuple) and s.is_integer():
        return m // math.gcd(m, int(s))
    return m


def _sr_untiled(model: nn.Module, x: torch.Tensor, scale: float, tta: bool) -> torch.Tensor:
    model_ch = int(getattr(model, "channels", 3))
    c = x.shape[1]
    if model_ch == 1:
        if c == 1:  # gray image: map to the Y range the model was trained on, and back
            y = _network(model, x * Y_SPAN + Y_LO, scale, tta)
            return (y - Y_LO) / Y_SPAN
        ycc = rgb_to_ycbcr(x)
        y = _network(model, ycc[:, :1], scale, tta)
        chroma = imresize_torch(ycc[:, 1:], scale=_scale_arg(scale))
        return ycbcr_to_rgb(torch.cat([y, chroma], dim=1))
    if c == 1 and model_ch == 3:
        return _network(model, x.expand(-1, 3, -1, -1), scale, tta).mean(dim=1, keepdim=True)
    return _network(model, x, scale, tta)


def feature_floats_per_pixel(model: nn.Module) -> float:
    """Peak live float features per pixel at the network's input resolution: what the
    model declares (multi-resolution networks), else five maps of its widest layer
    (input, output, residual/skip, slack)."""
    floats = getattr(model, "feature_floats_per_pixel", None)
    if floats is not None:
        return float(floats)
    widths = [max(m.in_channels, m.out_channels) for m in model.modules()
              if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    return 5.0 * max(widths, default=3)


def bytes_per_input_pixel(model: nn.Module, scale: float, tta: bool = False) -> float:
    """Rough peak memory (bytes) of the pipeline per input pixel of one tile.

    Counts a few live float32 feature maps of the model's widest layer (at the
    output resolution for pre-upsampled models) plus the output-side tensors
    (network output, colour conversion, chroma, clamp, TTA sum). It only has
    to be right within a small factor: it sizes ``tile="auto"``.
    """
    s = _scale_arg(scale)
    s2 = s[0] * s[1] if isinstance(s, tuple) else s ** 2
    feature_res = s2 if getattr(model, "pre_upsampled", False) else 1.0
    features = 4.0 * feature_floats_per_pixel(model) * feature_res
    output_side = 4.0 * 3 * s2 * (10 if tta else 8)
    return features + output_side


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's parameters (CPU for parameter-free models)."""
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@torch.inference_mode()
def super_resolve(model: nn.Module, x: torch.Tensor, scale: float, tile: int | str | None = None,
                  tta: bool = False, out_dtype: torch.dtype | None = None,
                  on_tile: Callable[[int, int], None] | None = None,
                  tile_budget: float = 1.0e9) -> torch.Tensor:
    """Upscale a batch (B, C, h, w), C = 1 (gray) or 3 (RGB).

    ``x`` is float in [0, 1], or uint8 / uint16 / int32 samples (0..255 or
    0..65535), converted to float one tile at a time so that a large image is
    never held as a full float tensor. Returns (B, C, H, W) with H = h*scale:
    float clipped to [0, 1], or quantised to ``out_dtype`` (torch.uint8,
    torch.uint16 or torch.int32 holding 16-bit) tile by tile, on ``x``'s device.
    ``tile`` is the core tile size in input pixels, ``"auto"`` (the largest that
    fits ``tile_budget`` bytes) or None (whole image). The model may live on
    another device than ``x``: tiles are moved to it and back. Models with a
    ``pad_multiple`` get the image padded to it and tiles on their block grid
    (:func:`tile_multiple`), tiled or not, so tiled output equals whole-image output.
    """
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"expected (B, 1|3, H, W), got {tuple(x.shape)}")
    model.eval()
    overlap = pipeline_radius(model, scale)
    if tile == "auto":
        tile = auto_tile_size(x.shape[2], x.shape[3], bytes_per_input_pixel(model, scale, tta),
                              tile_budget, overlap)
    elif isinstance(tile, str):
        raise ValueError(f"tile must be an integer, 'auto' or None, not {tile!r}")
    device = model_device(model)

    def fn(t: torch.Tensor) -> torch.Tensor:
        return _sr_untiled(model, t.to(device), scale, tta).clamp_(0, 1)

    s = _scale_arg(scale)
    # Non-integer and per-axis scales tile too, on aligned boundaries (exact).
    int_scale = int(s) if not isinstance(s, tuple) and s.is_integer() else s
    return tiled_apply(fn, x, int_scale, tile, overlap=overlap, out_dtype=out_dtype, on_tile=on_tile,
                       multiple=tile_multiple(model, scale))


def apply_to_array(arr, fn: Callable[[torch.Tensor, "torch.dtype | None"], torch.Tensor]):
    """Run a tensor pipeline on an image array: uint8/uint16/float (H, W) or (H, W, 3).

    ``fn(t, out_dtype)`` gets the (1, C, H, W) tensor in the array's own dtype
    (integer input is converted to float tile by tile inside the pipeline) and
    returns (1, C, H', W'); the result has the array's layout and dtype.
    """
    import numpy as np

    a = np.asarray(arr)
    if not a.flags.writeable:  # torch.from_numpy needs a writable buffer
        a = a.copy()
    if a.dtype == np.uint8:
        x, out_dtype = torch.from_numpy(np.ascontiguousarray(a)), torch.uint8
    elif a.dtype == np.uint16:
        x, out_dtype = torch.from_numpy(np.ascontiguousarray(a)), torch.uint16
    else:
        x, out_dtype = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)), None
    gray = x.ndim == 2
    t = (x[:, :, None] if gray else x).permute(2, 0, 1)[None]
    out = fn(t, out_dtype)[0].permute(1, 2, 0).numpy()
    if gray:
        out = out[:, :, 0]
    return out if out_dtype is not None else out.astype(a.dtype, copy=False)


def upscale_array(arr, scale: float, model: nn.Module, tile: int | str | None = None, tta: bool = False):
    """Upscale an image array with a loaded ``model`` (by name: :func:`kakudai.zoo.load_model`):
    uint8/uint16/float (H, W) or (H, W, 3); same dtype out."""
    return apply_to_array(arr, lambda t, dt: super_resolve(model, t, scale, tile=tile, tta=tta,
                                                           out_dtype=dt))
