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

from ..models.calling import model_forward
from ..models.calling import scale_arg as _scale_arg
from ..ops.color import rgb_to_ycbcr, ycbcr_to_rgb
from ..ops.resize import imresize_torch
from .tiling import auto_tile_size, tiled_apply

__all__ = ["super_resolve", "model_forward", "pipeline_radius", "tile_multiple", "bytes_per_input_pixel",
           "model_device", "upscale_array"]

Y_LO, Y_SPAN = 16.0 / 255.0, 219.0 / 255.0


def self_ensemble(run: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """x8 geometric self-ensemble of ``run`` on ``x`` (B, C, H, W): the eight flips and
    transposes, each undone on the output, averaged. ``run`` must map a transposed
    input to the transposed output (any same-padded network, at any scale)."""
    acc = None
    for t in range(8):
        xt = x
        if t & 4:
            xt = xt.transpose(-1, -2)
        if t & 2:
            xt = xt.flip(-1)
        if t & 1:
            xt = xt.flip(-2)
        y = run(xt)
        if t & 1:
            y = y.flip(-2)
        if t & 2:
            y = y.flip(-1)
        if t & 4:
            y = y.transpose(-1, -2)
        acc = y if acc is None else acc + y
    return acc / 8.0


def _network(model: nn.Module, x: torch.Tensor, scale: float, tta: bool) -> torch.Tensor:
    if tta:
        return self_ensemble(lambda xt: model_forward(model, xt, scale), x)
    return model_forward(model, x, scale)


def pipeline_radius(model: nn.Module, scale: float) -> int:
    """Input pixels of context that one output pixel depends on, pipeline included."""
    r = model.spec.receptive_radius
    if model.spec.pre_upsampled:
        s = _scale_arg(scale)
        r = math.ceil(r / (min(s) if isinstance(s, tuple) else s))
    return r + 2  # +2: the bicubic kernel used for pre-upsampling and chroma


def tile_multiple(model: nn.Module, scale: float) -> int:
    """The block side, in input pixels, that tiles must align to (see
    :func:`~kakudai.infer.tiling.tiled_apply`): the model's ``pad_multiple``, which
    a pre-upsampled model counts on the upsampled image, so at an integer scale s
    a block of ``pad_multiple / gcd(pad_multiple, s)`` input pixels is enough."""
    m = model.spec.pad_multiple
    s = _scale_arg(scale)
    if m > 1 and model.spec.pre_upsampled and not isinstance(s, tuple) and s.is_integer():
        return m // math.gcd(m, int(s))
    return m


def adapt_channels(run: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, model_channels: int,
                   chroma_scale: float | tuple[float, float] | None = None) -> torch.Tensor:
    """Run ``run``, a ``model_channels``-channel network, on ``x`` (B, C, H, W), C = 1 (gray) or 3 (RGB).

    A 3-channel model takes a gray image as R = G = B and returns the mean of its
    three outputs. A 1-channel model is a luma model when ``chroma_scale`` is
    given (upscaling): an RGB image goes through YCbCr, the model sees Y and the
    chroma is bicubic-resized by ``chroma_scale``; a gray image is mapped into Y's
    [16, 235] range and back. Otherwise (restoration) it is a gray model, run on
    each colour channel of an RGB image as on a gray one.
    """
    c = x.shape[1]
    if model_channels == 1 and chroma_scale is not None:
        if c == 1:  # gray image: map to the Y range the model was trained on, and back
            y = run(x * Y_SPAN + Y_LO)
            return (y - Y_LO) / Y_SPAN
        ycc = rgb_to_ycbcr(x)
        y = run(ycc[:, :1])
        chroma = imresize_torch(ycc[:, 1:], scale=_scale_arg(chroma_scale))
        return ycbcr_to_rgb(torch.cat([y, chroma], dim=1))
    if c == 1 and model_channels == 3:
        return run(x.expand(-1, 3, -1, -1)).mean(dim=1, keepdim=True)
    if c == 3 and model_channels == 1:
        b, _, h, w = x.shape
        return run(x.reshape(b * 3, 1, h, w)).reshape(b, 3, h, w)
    if c != model_channels:
        raise ValueError(f"a {model_channels}-channel model cannot take a {c}-channel image")
    return run(x)


def _sr_untiled(model: nn.Module, x: torch.Tensor, scale: float, tta: bool) -> torch.Tensor:
    return adapt_channels(lambda t: _network(model, t, scale, tta), x, model.spec.channels, chroma_scale=scale)


def bytes_per_input_pixel(model: nn.Module, scale: float, tta: bool = False, output_maps: int = 8) -> float:
    """Rough peak memory (bytes) of the pipeline per input pixel of one tile.

    Counts the live float32 features the model declares per pixel of its input
    (``spec.feature_floats_per_pixel``, at the output resolution for pre-upsampled
    models) plus ``output_maps`` 3-channel
    maps at the output resolution (network output, colour conversion, chroma,
    clamp: 8 when upscaling, 6 when restoring, which converts no colour), or 10
    with the TTA sum. It only has to be right within a small factor: it sizes
    ``tile="auto"``.
    """
    s = _scale_arg(scale)
    s2 = s[0] * s[1] if isinstance(s, tuple) else s ** 2
    feature_res = s2 if model.spec.pre_upsampled else 1.0
    features = 4.0 * model.spec.feature_floats_per_pixel * feature_res
    output_side = 4.0 * 3 * s2 * (10 if tta else output_maps)
    return features + output_side


def resolve_tile(tile: int | str | None, h: int, w: int, bytes_per_pixel: float, budget: float,
                 overlap: int) -> int | None:
    """The core tile side for an h x w input: ``tile`` itself, or for ``"auto"`` the
    largest that keeps ``bytes_per_pixel`` x tile area within ``budget`` bytes."""
    if tile == "auto":
        return auto_tile_size(h, w, bytes_per_pixel, budget, overlap)
    if isinstance(tile, str):
        raise ValueError(f"tile must be an integer, 'auto' or None, not {tile!r}")
    return tile


def upscale_tile(tile: int | str | None, model: nn.Module, h: int, w: int, scale: float, tta: bool,
                 budget: float) -> int | None:
    """:func:`resolve_tile` for :func:`super_resolve` of an h x w input: its memory
    per pixel and its overlap (:func:`pipeline_radius`)."""
    return resolve_tile(tile, h, w, bytes_per_input_pixel(model, scale, tta), budget, pipeline_radius(model, scale))


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
    tile = upscale_tile(tile, model, x.shape[2], x.shape[3], scale, tta, tile_budget)
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
