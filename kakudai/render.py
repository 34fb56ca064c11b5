"""``kakudai render``: one small image drawn at a series of resolutions.

The resolution-independence demonstration of the implicit model: the image
is encoded **once** (:meth:`kakudai.models.implicit.Implicit.encode`) and the
same latent grid is decoded at every requested size; the results are laid
out side by side on a labelled contact sheet, optionally above MATLAB bicubic
at the same sizes for comparison.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn

from .data.io import tensor_to_uint8, uint8_to_tensor
from .ops.color import rgb_to_ycbcr, ycbcr_to_rgb
from .ops.resize import imresize_np, imresize_torch, output_size

__all__ = ["Rendering", "render_sizes", "contact_sheet", "render_sheet"]

BACKGROUND, INK, GAP, MARGIN = (246, 246, 246), (30, 30, 30), 10, 12


@dataclass
class Rendering:
    """One decoded size: the image (uint8 H x W x 3), its long side and its scale."""

    image: np.ndarray
    size: int
    scale: float


@torch.inference_mode()
def render_sizes(model: nn.Module, rgb: np.ndarray, sizes: Sequence[int]) -> list[Rendering]:
    """Decode ``rgb`` (uint8 h x w x 3) at each long side in ``sizes`` from one encoding.

    ``model`` must have ``encode``/``decode`` (the implicit model); for Y-only
    models chroma is MATLAB bicubic, as in :func:`kakudai.infer.upscale.super_resolve`.
    Sizes must be at least the image's long side (rendering enlarges).
    """
    from .models.implicit import Implicit

    if not isinstance(model, Implicit):
        raise ValueError("render needs an arbitrary-scale model with encode/decode (e.g. implicit)")
    h, w = rgb.shape[:2]
    long_side = max(h, w)
    small = [s for s in sizes if s < long_side]
    if small:
        raise ValueError(f"size {small[0]} is smaller than the image ({w}x{h}); render enlarges")
    model.eval()
    x = uint8_to_tensor(rgb)
    y_only = model.spec.channels == 1
    ycc = rgb_to_ycbcr(x) if y_only else None
    latent = model.encode(ycc[:, :1] if ycc is not None else x)  # the one encoding
    out = []
    for size in sizes:
        scale = size / long_side
        res = model.decode(latent, scale=scale)
        if ycc is not None:
            res = ycbcr_to_rgb(torch.cat([res, imresize_torch(ycc[:, 1:], scale=scale)], dim=1))
        out.append(Rendering(tensor_to_uint8(res), int(size), scale))
    return out


def bicubic_sizes(rgb: np.ndarray, sizes: Sequence[int]) -> list[Rendering]:
    """MATLAB bicubic of ``rgb`` at the same long sides (the comparison row)."""
    long_side = max(rgb.shape[:2])
    out = []
    for size in sizes:
        scale = size / long_side
        a = imresize_np(rgb.astype(np.float64), scale=scale)
        out.append(Rendering(np.clip(np.round(a), 0, 255).astype(np.uint8), int(size), scale))
    return out


def contact_sheet(rows: Sequence[tuple[str, Sequence[Rendering]]], title: str = ""):
    """A PIL image: each row's renderings left to right, bottom-aligned, each
    labelled with its pixel size and scale; the row name at the left."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=13)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def text_w(s: str) -> int:
        return int(probe.textlength(s, font=font))

    line = 18
    name_w = max((text_w(n) for n, _ in rows), default=0) + GAP
    # Columns line up across rows: width of column j = widest panel j of any row.
    ncols = max(len(row) for _, row in rows)
    colw = [max(max(row[j].image.shape[1], text_w(_label(row[j]))) for _, row in rows if j < len(row))
            for j in range(ncols)]
    rowh = [max(r.image.shape[0] for r in row) + line for _, row in rows]
    width = 2 * MARGIN + name_w + sum(colw) + GAP * (ncols - 1)
    width = max(width, 2 * MARGIN + text_w(title))
    top = MARGIN + (line + GAP if title else 0)
    height = top + sum(rowh) + GAP * (len(rows) - 1) + MARGIN
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((MARGIN, MARGIN), title, fill=INK, font=font)
    y = top
    for (name, row), rh in zip(rows, rowh):
        draw.text((MARGIN, y + rh - line - 14), name, fill=INK, font=font)
        x = MARGIN + name_w
        for j, r in enumerate(row):
            ih, iw = r.image.shape[:2]
            base = y + rh - line  # images sit on a common baseline
            sheet.paste(Image.fromarray(r.image), (x + (colw[j] - iw) // 2, base - ih))
            lab = _label(r)
            draw.text((x + (colw[j] - text_w(lab)) // 2, base + 3), lab, fill=INK, font=font)
            x += colw[j] + GAP
        y += rh + GAP
    return sheet


def _label(r: Rendering) -> str:
    h, w = r.image.shape[:2]
    return f"{w}x{h} (x{r.scale:.3g})"


def render_sheet(rgb: np.ndarray, model: nn.Module, sizes: Sequence[int], from_size: int | None = None,
                 compare: bool = False, name: str = "image", model_name: str = "implicit"):
    """The whole command: optionally shrink ``rgb`` (uint8 h x w x 3) so its long
    side is ``from_size`` (MATLAB bicubic; default: the smallest size when the
    image is larger), render every size from one encoding, lay out the sheet."""
    sizes = sorted({int(s) for s in sizes})
    if not sizes or sizes[0] < 1:
        raise ValueError("sizes must be positive pixel counts")
    h, w = rgb.shape[:2]
    note = f"{w}x{h}"
    target = from_size if from_size is not None else (sizes[0] if max(h, w) > sizes[0] else None)
    if target is not None and target != max(h, w):
        if target > max(h, w):
            raise ValueError(f"--from {target} is larger than the image ({w}x{h})")
        (nh, nw), _ = output_size((h, w), scale=target / max(h, w))
        rgb = np.clip(np.round(imresize_np(rgb.astype(np.float64), size=(nh, nw))), 0, 255).astype(np.uint8)
        note += f" shrunk to {nw}x{nh}"
    rows = [(model_name, render_sizes(model, rgb, sizes))]
    if compare:
        rows.append(("bicubic", bicubic_sizes(rgb, sizes)))
    title = f"{name} ({note}): encoded once by {model_name}, decoded at {len(sizes)} sizes"
    return contact_sheet(rows, title)
