"""The published-table evaluation protocol, as one function over image folders.

HR cropped to a multiple of the scale, LR = round(MATLAB bicubic(HR, 1/s)) to
uint8, SR by the model, rounded to uint8 (what a saved PNG holds), then PSNR
and SSIM on Y (BT.601, 16-235) with ``ceil(scale)`` pixels shaved; gray
images on their raw values. See :mod:`kakudai.ops.metrics`.
"""

from __future__ import annotations

import math
import os
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn

from .data.datasets import benchmark_set
from .infer.upscale import super_resolve
from .ops.metrics import psnr, ssim

__all__ = ["evaluate_folder", "to_tensor", "from_tensor"]


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """uint8 (H, W) or (H, W, C) -> float32 (1, C, H, W) in [0, 1]."""
    a = img[:, :, None] if img.ndim == 2 else img
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).float().div_(255.0).unsqueeze(0)


def from_tensor(t: torch.Tensor) -> np.ndarray:
    """uint8 (1, C, H, W) tensor -> (H, W) or (H, W, C) array."""
    a = t[0].permute(1, 2, 0).cpu().numpy()
    return a[:, :, 0] if a.shape[2] == 1 else a


def evaluate_folder(model: nn.Module, folder: str | os.PathLike, scale: float, *,
                    tile: int | None = None, tta: bool = False, channel: str = "y",
                    border: int | None = None, with_ssim: bool = True,
                    on_image: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Score ``model`` on every image of ``folder`` at ``scale``.

    Returns {"name", "n", "psnr", "ssim", "images": [{"name", "psnr", "ssim"}]}
    with means over images (the tables' convention).
    """
    items = benchmark_set(folder, scale)
    shave = math.ceil(scale) if border is None else border
    rows = []
    for i, it in enumerate(items, start=1):
        sr = from_tensor(super_resolve(model, to_tensor(it.lr), scale, tile=tile, tta=tta,
                                       out_dtype=torch.uint8))
        row = {"name": it.name, "psnr": psnr(sr, it.hr, border=shave, channel=channel)}
        if with_ssim:
            row["ssim"] = ssim(sr, it.hr, border=shave, channel=channel)
        rows.append(row)
        if on_image:
            on_image(i, len(items))
    out: dict[str, Any] = {"name": os.path.basename(os.path.normpath(str(folder))), "n": len(rows),
                           "psnr": float(np.mean([r["psnr"] for r in rows]))}
    if with_ssim:
        out["ssim"] = float(np.mean([r["ssim"] for r in rows]))
    out["images"] = rows
    return out
