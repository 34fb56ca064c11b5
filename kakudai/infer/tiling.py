"""Tiled inference: one function for every model, equal to whole-image inference.

The image is cut into non-overlapping core tiles in input (low-resolution)
space. Each core is run with ``overlap`` extra input pixels of real context on
every side (clamped at the image border, where the model's own padding then
applies exactly as on the whole image), and only the core's output is kept.
With ``overlap`` at least the model's receptive radius, every output pixel sees
exactly the inputs it sees in one whole-image pass, so the result is equal up
to floating-point summation order; no blending or seams.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator

import torch

__all__ = ["tile_grid", "tiled_apply", "auto_tile_size"]


def tile_grid(h: int, w: int, tile: int) -> Iterator[tuple[int, int, int, int]]:
    """Core tiles (y0, y1, x0, x1) covering an h x w grid, row-major, near-equal sizes."""
    ny, nx = max(1, math.ceil(h / tile)), max(1, math.ceil(w / tile))
    ys = [round(i * h / ny) for i in range(ny + 1)]
    xs = [round(i * w / nx) for i in range(nx + 1)]
    for i in range(ny):
        for j in range(nx):
            yield ys[i], ys[i + 1], xs[j], xs[j + 1]


def auto_tile_size(h: int, w: int, bytes_per_input_pixel: float, budget_bytes: float = 1.5e9,
                   minimum: int = 64) -> int:
    """Largest square tile whose working set fits ``budget_bytes``.

    ``bytes_per_input_pixel`` is the model's peak activation memory per input
    pixel (e.g. 4 bytes x widest feature map x a few live tensors).
    """
    side = int(math.sqrt(max(budget_bytes, 1) / max(bytes_per_input_pixel, 1e-9)))
    side = max(minimum, side)
    return max(h, w) if side >= max(h, w) else side


def tiled_apply(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, scale: int,
                tile: int | None, overlap: int, out_dtype: torch.dtype | None = None,
                on_tile: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """Apply ``fn`` ((B, C, h, w) -> (B, C', h*scale, w*scale)) tile by tile.

    ``tile`` is the core tile side in input pixels (None or 0: whole image).
    With ``out_dtype=torch.uint8`` (or uint16) each tile is clamped to [0, 1]
    and quantised as it is placed, so the full-size float result is never held.
    ``on_tile(done, total)`` reports progress.
    """
    b, _, h, w = x.shape
    if not tile or (tile >= h and tile >= w):
        y = fn(x)
        if on_tile:
            on_tile(1, 1)
        return _quantise(y, out_dtype)
    cores = list(tile_grid(h, w, tile))
    out = None
    for n, (y0, y1, x0, x1) in enumerate(cores, start=1):
        py0, py1 = max(0, y0 - overlap), min(h, y1 + overlap)
        px0, px1 = max(0, x0 - overlap), min(w, x1 + overlap)
        y = fn(x[:, :, py0:py1, px0:px1])
        if out is None:
            out = torch.empty((b, y.shape[1], h * scale, w * scale),
                              dtype=out_dtype or y.dtype, device=y.device)
        oy, ox = (y0 - py0) * scale, (x0 - px0) * scale
        core = y[:, :, oy:oy + (y1 - y0) * scale, ox:ox + (x1 - x0) * scale]
        out[:, :, y0 * scale:y1 * scale, x0 * scale:x1 * scale] = _quantise(core, out_dtype)
        if on_tile:
            on_tile(n, len(cores))
    assert out is not None
    return out


def _quantise(y: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    if dtype is None or dtype.is_floating_point:
        return y if dtype is None else y.to(dtype)
    peak = 255.0 if dtype == torch.uint8 else 65535.0
    return (y.clamp(0, 1) * peak).round_().to(dtype)
