"""A dependency-free PNG plot of a run's training loss and validation PSNR."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from PIL import Image, ImageDraw


def _panel(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], xs: Sequence[float],
           ys: Sequence[float], title: str, colour: tuple[int, int, int], log_y: bool = False) -> None:
    x0, y0, x1, y1 = box
    draw.rectangle(box, outline=(0, 0, 0))
    draw.text((x0 + 4, y0 - 14), title, fill=(0, 0, 0))
    pts = [(x, math.log10(y) if log_y else y) for x, y in zip(xs, ys)
           if y is not None and (not log_y or y > 0)]
    if len(pts) < 1:
        return
    xmin, xmax = min(p[0] for p in pts), max(p[0] for p in pts)
    ymin, ymax = min(p[1] for p in pts), max(p[1] for p in pts)
    xmax = xmax if xmax > xmin else xmin + 1
    ymax = ymax if ymax > ymin else ymin + 1e-6
    def tx(x: float) -> float:
        return x0 + 6 + (x - xmin) / (xmax - xmin) * (x1 - x0 - 12)
    def ty(y: float) -> float:
        return y1 - 6 - (y - ymin) / (ymax - ymin) * (y1 - y0 - 12)
    draw.line([(tx(x), ty(y)) for x, y in pts], fill=colour, width=2) if len(pts) > 1 else \
        draw.ellipse([tx(pts[0][0]) - 2, ty(pts[0][1]) - 2, tx(pts[0][0]) + 2, ty(pts[0][1]) + 2], fill=colour)
    fmt = (lambda v: f"{10 ** v:.4g}") if log_y else (lambda v: f"{v:.3f}")
    draw.text((x0 + 4, y0 + 2), fmt(ymax), fill=(80, 80, 80))
    draw.text((x0 + 4, y1 - 14), fmt(ymin), fill=(80, 80, 80))
    draw.text((x1 - 70, y1 + 2), f"it {int(xmax)}", fill=(80, 80, 80))


def plot_history(history: list[dict[str, Any]], path: str | Path) -> Path:
    """Two panels: training loss (log scale) and mean validation PSNR, against iterations."""
    train = [h for h in history if h.get("kind") == "train"]
    val = [h for h in history if h.get("kind") == "val"]
    img = Image.new("RGB", (720, 520), "white")
    d = ImageDraw.Draw(img)
    _panel(d, (40, 30, 700, 240), [h["it"] for h in train], [h["loss"] for h in train],
           "training loss (log)", (30, 90, 200), log_y=True)
    _panel(d, (40, 290, 700, 500), [h["it"] for h in val], [h["psnr"] for h in val],
           "validation PSNR (dB, mean)", (200, 60, 30))
    path = Path(path)
    img.save(path)
    return path
