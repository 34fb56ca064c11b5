"""One crop, side by side, for bicubic, each model and the original (``kakudai compare``,
whose command line is :mod:`kakudai.cli.compare`).

Given a high-resolution image (the default), it is mod-cropped and downscaled
with MATLAB bicubic exactly as the benchmarks do, each method upscales that
LR image, and every panel is labelled with its PSNR against the original (Y
channel of BT.601 YCbCr, ``ceil(scale)`` pixels shaved, whole image: the
protocol of ``kakudai eval``). With ``lr=True`` the image is taken as the
input itself: no original, no PSNR, the nearest-neighbour input shown first.

Panels are enlarged with nearest neighbour so single pixels stay visible.
Drawing uses PIL only.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["Panel", "compare_panels", "render_figure", "parse_models", "parse_crop"]

BACKGROUND, INK, MUTED = (255, 255, 255), (20, 20, 20), (90, 90, 90)


@dataclass
class Panel:
    """One column of the figure: a label, the full image it was cut from, and its PSNR."""

    label: str
    image: np.ndarray  # (H, W) or (H, W, 3) uint8, in output/HR coordinates
    psnr: float | None = None


def parse_models(specs: list[str]) -> list[tuple[str, str]]:
    """``["ksr", "mine=run/x.safetensors"]`` -> [(label, model spec)]. Bicubic is added first."""
    out: list[tuple[str, str]] = [("bicubic", "bicubic")]
    for s in specs:
        label, _, spec = s.partition("=") if ("=" in s and "/" not in s.split("=", 1)[0]) else ("", "", s)
        spec = spec or s
        if spec == "bicubic":
            continue
        if not label:
            label = Path(spec).stem if spec.endswith(".safetensors") else spec
        out.append((label, spec))
    return out


def parse_crop(text: str | None, h: int, w: int) -> tuple[int, int, int, int]:
    """``"x,y,w,h"`` (or None: a centred square) checked against an h x w image."""
    if text is None:
        side = max(8, min(h, w, max(32, min(h, w) // 3)))
        side = min(side, 128)
        return (w - side) // 2, (h - side) // 2, min(side, w), min(side, h)
    try:
        x, y, cw, ch = (int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--crop must be x,y,w,h in pixels, not {text!r}") from None
    if cw < 1 or ch < 1 or x < 0 or y < 0 or x + cw > w or y + ch > h:
        raise ValueError(f"--crop {text} is outside the {w}x{h} image")
    return x, y, cw, ch


def compare_panels(path: str | os.PathLike, models: list[tuple[str, str]], scale: float,
                   lr: bool = False, tile: int | str | None = "auto", degrade: str | None = None,
                   denoise: "int | str | None" = None) -> list[Panel]:
    """Upscale the image at ``path`` with each (label, model) and return the panels.

    HR mode: the image is mod-cropped to a multiple of ``scale``, downscaled
    (MATLAB bicubic, rounded to 8 bits), degraded by the ``degrade`` chain if given
    (:func:`kakudai.evaluation.degraded_lr`, as ``kakudai eval --degrade``), upscaled,
    and scored; the original is the last panel. LR mode (``lr=True``): the image is
    upscaled as it is. ``denoise``: as :class:`kakudai.api.Upscaler` takes it (``"auto"``:
    degraded inputs are cleaned first, as ``kakudai upscale`` does by default; the
    panel's label says how). Raises ImageReadError / WeightsError / ValueError.
    """
    from .api import Upscaler
    from .data.datasets import degrade_bicubic, mod_crop
    from .data.io import ImageData, read_image
    from .evaluation import degraded_lr
    from .ops.metrics import psnr
    from .zoo import is_file, resolve

    data = read_image(path)
    px = data.pixels
    if px.dtype != np.uint8:  # the protocol is 8-bit
        px = ((px.astype(np.uint32) + 128) // 257).astype(np.uint8)
    img = px[:, :, 0] if px.shape[2] == 1 else px
    if lr:
        low, ref = img, None
    else:
        if not float(scale).is_integer():
            raise ValueError("comparing against an original needs an integer --scale (or use --lr)")
        ref = mod_crop(img, int(scale))
        low = degraded_lr(Path(path).name, degrade_bicubic(ref, scale), scale, degrade)
    low3 = low[:, :, None] if low.ndim == 2 else low
    panels: list[Panel] = []
    if lr:
        near = np.repeat(np.repeat(low, int(math.ceil(scale)), axis=0), int(math.ceil(scale)), axis=1)
        panels.append(Panel("input (nearest)", near))
    seen: set[str] = set()
    for label, spec in models:
        real = spec if is_file(spec) or spec.endswith("+shrink") else resolve(spec, scale, task="upscale").name
        if real in seen:  # e.g. "default" before any weights ship is bicubic again
            print(f"kakudai: note: {label} is {real} at x{scale:g}; not shown twice", file=sys.stderr)
            continue
        seen.add(real)
        # The bicubic baseline shows the input as it is, never cleaned.
        up = Upscaler(spec, tile=tile, denoise=None if spec == "bicubic" else denoise)
        out = up(ImageData(low3), scale).pixels
        if up.last_cleanup:
            label = f"{label}, {up.last_cleanup}"
        sr = out[:, :, 0] if out.shape[2] == 1 else out
        score = None
        if ref is not None:
            sr = sr[: ref.shape[0], : ref.shape[1]]
            score = psnr(sr, ref, border=math.ceil(scale), channel="y")
        shown = label if real == spec or label == real else f"{label} ({real})"
        panels.append(Panel(shown, sr, score))
    if ref is not None:
        panels.append(Panel("original (HR)", ref))
    return panels


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow without FreeType: the bitmap font
        return ImageFont.load_default()


def _wrap(text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, width: int,
          draw: ImageDraw.ImageDraw) -> list[str]:
    """Greedy word wrap of a label to the panel width."""
    lines: list[str] = []
    for word in text.split():
        if lines and draw.textlength(f"{lines[-1]} {word}", font=font) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines or [""]


def render_figure(panels: list[Panel], crop: tuple[int, int, int, int], zoom: int | None = None,
                  title: str | None = None) -> Image.Image:
    """Panels side by side: the same crop of each, enlarged ``zoom`` times, labelled below."""
    x, y, cw, ch = crop
    zoom = zoom or max(1, round(256 / max(cw, ch)))
    pw, ph = cw * zoom, ch * zoom
    gap, pad = 10, 12
    font, small = _font(16), _font(13)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    labels = [_wrap(p.label, font, pw, measure) for p in panels]
    label_h = 20 * max(len(lines) for lines in labels) + 24
    title_h = 28 if title else 0
    width = pad * 2 + len(panels) * pw + (len(panels) - 1) * gap
    height = pad * 2 + title_h + ph + label_h
    fig = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(fig)
    if title:
        draw.text((pad, pad), title, fill=MUTED, font=small)
    for i, p in enumerate(panels):
        crop_img = Image.fromarray(np.ascontiguousarray(p.image[y:y + ch, x:x + cw])).convert("RGB")
        left, top = pad + i * (pw + gap), pad + title_h
        fig.paste(crop_img.resize((pw, ph), Image.NEAREST), (left, top))
        for k, line in enumerate(labels[i]):
            draw.text((left, top + ph + 6 + 20 * k), line, fill=INK, font=font)
        if p.psnr is not None:
            draw.text((left, top + ph + 6 + 20 * len(labels[i])), f"PSNR {p.psnr:.2f} dB", fill=MUTED, font=small)
    return fig
