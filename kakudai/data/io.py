"""Image files in and out. The only module that touches files, uint8 and modes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

__all__ = ["IMAGE_EXTENSIONS", "ImageReadError", "read_image_uint8"]

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"}


class ImageReadError(Exception):
    """An image file could not be read; the message names the reason."""


def read_image_uint8(path: str | os.PathLike, mode: str | None = None) -> np.ndarray:
    """Read an 8-bit image as (H, W) for gray or (H, W, 3) for colour, EXIF-upright.

    ``mode="RGB"`` forces three channels. Used for benchmark and training data.
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            if mode is not None:
                im = im.convert(mode)
            elif im.mode not in ("L", "RGB"):
                im = im.convert("L" if im.mode in ("1", "I;16", "I") else "RGB")
            return np.asarray(im).copy()
    except FileNotFoundError:
        raise ImageReadError(f"{path}: no such file") from None
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise ImageReadError(f"{path}: cannot read image ({e})") from None
