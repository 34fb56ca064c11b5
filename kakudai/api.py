"""High-level entry points shared by the CLI, the web page and video."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .checkpoint import load_model
from .infer.upscale import upscale_array

__all__ = ["upscale"]


def upscale(image: Any, scale: float = 2, model: Any = "default", tile: int | None = None,
            tta: bool = False) -> Any:
    """Upscale a PIL image, a numpy array (H, W[, 3]) or an image path.

    Returns the same kind: PIL in, PIL out; array in, array of the same dtype out;
    a path in gives a PIL image.
    """
    if isinstance(model, str):
        model = load_model(model, scale)
    if isinstance(image, (str, os.PathLike)):
        with Image.open(Path(image)) as im:
            im.load()
            return upscale(im, scale, model, tile, tta)
    if isinstance(image, Image.Image):
        im = image.convert("RGB") if image.mode not in ("L", "RGB") else image
        out = upscale_array(np.asarray(im), scale, model, tile, tta)
        return Image.fromarray(out)
    return upscale_array(np.asarray(image), scale, model, tile, tta)
