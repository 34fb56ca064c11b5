"""Tiled inference: one function for every model, equal to whole-image inference.

The image is cut into non-overlapping core tiles in input (low-resolution)
space. Each core is run with ``overlap`` extra input pixels of real context on
every side (clamped at the image border, where the model's own padding then
applies exactly as on the whole image), and only the core's output is kept.
With ``overlap`` at least the model's receptive radius, every output pixel sees
exactly the inputs it sees in one whole-image pass, so the result is equal up
to floating-point summation order; no blending or seams.

Memory: the input may be an integer tensor (uint8 / uint16 image samples);
each tile is converted to float on its own, and with an integer ``out_dtype``
each output tile is quantised as it is placed. A large image then never exists
as a full-size float tensor at all; only one tile's working set does.

Block-grid models (space-to-depth, strided pyramids) see the image in
``multiple`` x ``multiple`` blocks and pad it to a multiple themselves: the
image is padded to the multiple first (the same reflection, once, for whole
image and tiles alike) and tiles and their context start on the block grid.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Callable, Iterator

import torch

__all__ = ["tile_grid", "tiled_apply", "auto_tile_size", "sample_peak", "tile_count", "pad_to_multiple"]


def sample_peak(dtype: torch.dtype) -> float | None:
    """The value that means 1.0 for integer image samples (None for float)."""
    if dtype.is_floating_point:
        return None
    if dtype == torch.uint8:
        return 255.0
    if dtype in (torch.uint16, torch.int32):  # int32 may hold 16-bit samples
        return 65535.0
    raise ValueError(f"unsupported image sample type {dtype}")


def tile_grid(h: int, w: int, tile: int, multiple: int = 1) -> Iterator[tuple[int, int, int, int]]:
    """Core tiles (y0, y1, x0, x1) covering an h x w grid, row-major, near-equal sizes.

    With ``multiple`` > 1 the tile side is rounded up to whole multiple x multiple
    blocks and every boundary but the far edges falls on the block grid.
    """
    m = multiple
    hb, wb, tb = math.ceil(h / m), math.ceil(w / m), max(1, math.ceil(tile / m))
    ny, nx = max(1, math.ceil(hb / tb)), max(1, math.ceil(wb / tb))
    ys = [min(h, m * round(i * hb / ny)) for i in range(ny + 1)]
    xs = [min(w, m * round(i * wb / nx)) for i in range(nx + 1)]
    for i in range(ny):
        for j in range(nx):
            yield ys[i], ys[i + 1], xs[j], xs[j + 1]


def auto_tile_size(h: int, w: int, bytes_per_input_pixel: float, budget_bytes: float = 1.0e9,
                   overlap: int = 0, minimum: int = 32) -> int:
    """Largest square core tile whose working set fits ``budget_bytes``.

    ``bytes_per_input_pixel`` is the pipeline's peak memory per input pixel of
    one tile (see ``kakudai.infer.upscale.bytes_per_input_pixel``); the tile
    is processed with ``overlap`` pixels of context on each side, which count
    too. Returns ``max(h, w)`` (one tile) when the whole image fits.
    """
    side = int(math.sqrt(max(budget_bytes, 1.0) / max(bytes_per_input_pixel, 1e-9))) - 2 * overlap
    side = max(minimum, side)
    return max(h, w) if side >= max(h, w) else side


def _reflect_index(n: int, total: int, device: torch.device) -> torch.Tensor:
    """Indices 0..total-1 into a length-n axis, reflecting past the end (no edge repeat)."""
    i = torch.arange(total, device=device)
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * (n - 1)
    i = i % period
    return torch.where(i < n, i, period - i)


def pad_to_multiple(x: torch.Tensor, m: int) -> torch.Tensor:
    """Reflect-pad the bottom/right of (B, C, H, W) to multiples of ``m`` (any dtype),
    as ``F.pad(mode="reflect")`` inside a block-grid model does."""
    h, w = x.shape[-2:]
    if h % m == 0 and w % m == 0:
        return x
    x = x.index_select(-2, _reflect_index(h, h + (-h % m), x.device))
    return x.index_select(-1, _reflect_index(w, w + (-w % m), x.device))


def tiled_apply(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, scale: float,
                tile: int | None, overlap: int, out_dtype: torch.dtype | None = None,
                on_tile: Callable[[int, int], None] | None = None, multiple: int = 1) -> torch.Tensor:
    """Apply ``fn`` ((B, C, h, w) float in [0, 1] -> (B, C', h*scale, w*scale)) tile by tile.

    ``x`` is float in [0, 1], or uint8 / uint16 / int32 samples (0..255 or
    0..65535) that are converted to float per tile. ``tile`` is the core tile
    side in input pixels (None or 0: whole image). ``scale`` is an integer, or
    a non-integer / per-axis (s_h, s_w) scale for a ``fn`` that follows MATLAB's
    sampling rule; tiles are then aligned so that the result is still exact
    (see ``_tiled_fractional``).
    With an integer ``out_dtype`` (torch.uint8, or torch.uint16 / torch.int32
    for 16-bit) each tile is clamped to [0, 1] and quantised as it is placed.
    The result lives on ``x``'s device with NHWC memory layout, so that
    ``out[0].permute(1, 2, 0)`` is a contiguous (H, W, C) image array.
    ``on_tile(done, total)`` reports progress.
    ``multiple``: ``fn`` sees its input in multiple x multiple blocks and pads it
    to the multiple itself (the input-side block size; see the module notes).
    Integer scales only when the image is cut (ValueError otherwise).
    """
    b, _, h, w = x.shape
    peak = sample_peak(x.dtype)

    def run(part: torch.Tensor) -> torch.Tensor:
        if peak is not None:
            part = part.to(torch.float32).div_(peak)
        return fn(part)

    whole = not tile or (tile >= h and tile >= w)
    if isinstance(scale, (tuple, list)) or int(scale) != scale:
        if whole:
            return _whole(run, x, out_dtype, on_tile)
        if multiple > 1:
            raise ValueError(f"tiles on a {multiple}-pixel block grid need an integer scale, not {scale}")
        return _tiled_fractional(run, x, scale, tile, overlap, out_dtype, on_tile)
    s = int(scale)
    xp = pad_to_multiple(x, multiple)
    if whole:
        return _whole(run, xp, out_dtype, on_tile, (h * s, w * s))
    hp, wp = xp.shape[-2:]
    overlap = multiple * math.ceil(overlap / multiple)  # context starts on the block grid too
    cores = list(tile_grid(hp, wp, tile, multiple))
    out = None
    for n, (y0, y1, x0, x1) in enumerate(cores, start=1):
        py0, py1 = max(0, y0 - overlap), min(hp, y1 + overlap)
        px0, px1 = max(0, x0 - overlap), min(wp, x1 + overlap)
        y = run(xp[:, :, py0:py1, px0:px1])
        if out is None:
            dtype = out_dtype or y.dtype
            # NHWC storage: the caller's (H, W, C) image is then a view, not a copy.
            out = torch.empty((b, h * s, w * s, y.shape[1]), dtype=dtype,
                              device=x.device).permute(0, 3, 1, 2)
        y1, x1 = min(y1, h), min(x1, w)  # the padding's output is dropped
        oy, ox = (y0 - py0) * s, (x0 - px0) * s
        core = y[:, :, oy:oy + (y1 - y0) * s, ox:ox + (x1 - x0) * s]
        out[:, :, y0 * s:y1 * s, x0 * s:x1 * s] = _quantise(core, out_dtype).to(out.device)
        del y, core
        if on_tile:
            on_tile(n, len(cores))
    assert out is not None
    return out


def _whole(run: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, out_dtype: torch.dtype | None,
           on_tile: Callable[[int, int], None] | None, out_hw: tuple[int, int] | None = None) -> torch.Tensor:
    """One pass over the whole of ``x``, the output cropped to ``out_hw`` (drops padding)."""
    y = run(x)
    if out_hw is not None and tuple(y.shape[-2:]) != out_hw:
        y = y[:, :, :out_hw[0], :out_hw[1]]
    y = _quantise(y, out_dtype).to(x.device)
    if on_tile:
        on_tile(1, 1)
    return y


def _quantise(y: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    if dtype is None or dtype.is_floating_point:
        return y if dtype is None else y.to(dtype)
    peak = sample_peak(dtype)
    return (y.clamp(0, 1) * peak).round_().to(dtype)


# ------------------------------------------------------- non-integer scales
def _axis_steps(scale: float, n: int) -> tuple[int, int]:
    """(p, q) with scale == p / q, q <= n: tile boundaries at multiples of q input
    pixels fall on output pixel boundaries (multiples of p). (0, n) if no such
    fraction exists (then this axis is not cut)."""
    f = Fraction(scale).limit_denominator(max(1, n))
    if abs(f.numerator / f.denominator - scale) > 1e-9 * scale:
        return 0, n
    return f.numerator, f.denominator


def _cuts(n: int, tile: int, q: int) -> list[int]:
    """Tile boundaries 0 = c0 < ... < ck = n at multiples of q, near-equal, about ``tile`` apart."""
    parts = max(1, math.ceil(n / tile))
    cuts = sorted({min(n, q * round(i * n / (parts * q))) for i in range(parts)} | {0, n})
    return cuts


def tile_count(h: int, w: int, tile: int | None, scale: float | tuple[float, float],
               multiple: int = 1) -> int:
    """How many tiles :func:`tiled_apply` cuts an h x w input into (progress totals)."""
    if not tile or (tile >= h and tile >= w):
        return 1
    if isinstance(scale, (tuple, list)) or int(scale) != scale:
        sh, sw = (scale[0], scale[1]) if isinstance(scale, (tuple, list)) else (scale, scale)
        return ((len(_cuts(h, tile, _axis_steps(float(sh), h)[1])) - 1)
                * (len(_cuts(w, tile, _axis_steps(float(sw), w)[1])) - 1))
    m = multiple
    return len(list(tile_grid(h + -h % m, w + -w % m, tile, m)))


def _tiled_fractional(run: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                      scale: float | tuple[float, float], tile: int, overlap: int,
                      out_dtype: torch.dtype | None,
                      on_tile: Callable[[int, int], None] | None) -> torch.Tensor:
    """Tiling at a non-integer (or per-axis) scale, still equal to the whole image.

    ``fn`` must follow MATLAB's sampling (output ``ceil(n * s)`` pixels, output i
    at input coordinate ``(i + 0.5) / s - 0.5``), as imresize and the implicit
    model do. For s = p / q, a tile starting at a multiple of q input pixels
    samples at exactly the whole image's positions, shifted by a whole number
    (a multiple of p) of output pixels; so cores and their context are aligned
    to multiples of q. Scales with no small enough q (e.g. 1080 / 1079) cut
    that axis less finely, or not at all.
    """
    from ..ops.resize import output_size

    b, _, h, w = x.shape
    sh, sw = (float(scale[0]), float(scale[1])) if isinstance(scale, (tuple, list)) else (float(scale),) * 2
    (oh, ow), _ = output_size((h, w), scale=(sh, sw))
    (ph, qh), (pw, qw) = _axis_steps(sh, h), _axis_steps(sw, w)
    ycuts, xcuts = _cuts(h, tile, qh), _cuts(w, tile, qw)

    def out_index(i: int, n: int, total: int, p: int, q: int) -> int:
        return total if i == n else (i // q) * p

    total = (len(ycuts) - 1) * (len(xcuts) - 1)
    out, done = None, 0
    for y0, y1 in zip(ycuts[:-1], ycuts[1:]):
        py0, py1 = max(0, y0 - math.ceil(overlap / qh) * qh), min(h, y1 + overlap)
        oy0, oy1, oyp = (out_index(v, h, oh, ph, qh) for v in (y0, y1, py0))
        for x0, x1 in zip(xcuts[:-1], xcuts[1:]):
            px0, px1 = max(0, x0 - math.ceil(overlap / qw) * qw), min(w, x1 + overlap)
            ox0, ox1, oxp = (out_index(v, w, ow, pw, qw) for v in (x0, x1, px0))
            y = run(x[:, :, py0:py1, px0:px1])
            if out is None:
                out = torch.empty((b, oh, ow, y.shape[1]), dtype=out_dtype or y.dtype,
                                  device=x.device).permute(0, 3, 1, 2)
            core = y[:, :, oy0 - oyp:oy1 - oyp, ox0 - oxp:ox1 - oxp]
            if core.shape[-2:] != (oy1 - oy0, ox1 - ox0):
                raise ValueError(f"model output {tuple(y.shape[-2:])} for a {py1 - py0}x{px1 - px0} tile "
                                 f"does not follow MATLAB's ceil(n * scale) size rule")
            out[:, :, oy0:oy1, ox0:ox1] = _quantise(core, out_dtype).to(out.device)
            del y, core
            done += 1
            if on_tile:
                on_tile(done, total)
    assert out is not None
    return out
