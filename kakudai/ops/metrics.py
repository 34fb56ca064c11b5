"""Image-quality metrics with the protocol of the published SR tables.

Protocol (named parameters, defaults = the super-resolution tables):

* ``channel="y"``: the Y of BT.601 YCbCr in 16-235 (MATLAB ``rgb2ycbcr``),
  computed from the 8-bit images and rounded to 8 bits as MATLAB does for
  uint8 input; ``channel="rgb"`` scores all channels.
* images with a single channel (e.g. Set14's bridge.png) are scored on their
  raw gray values, never converted to Y.
* ``border`` pixels are shaved from every side (the tables use the scale).
* PSNR peak 255. SSIM: Wang et al. 2004, Gaussian 11x11 window, sigma 1.5,
  K1 = 0.01, K2 = 0.03, L = 255, 'valid' filtering, mean over the map, averaged
  over channels.

Inputs are numpy arrays (H, W) or (H, W, C): uint8 (0-255) or float in [0, 1].
Float inputs are *not* rounded; quantise first if the output would be saved.
"""

from __future__ import annotations

import math

import numpy as np

from .color import RGB2YCBCR

__all__ = ["psnr", "ssim", "to_scored"]


def _to_255(img: np.ndarray) -> tuple[np.ndarray, bool]:
    a = np.asarray(img)
    if a.dtype == np.uint8:
        return a.astype(np.float64), True
    if a.dtype == np.uint16:
        return a.astype(np.float64) / 257.0, False
    return a.astype(np.float64) * 255.0, False


def to_scored(img: np.ndarray, channel: str = "y", border: int = 0) -> np.ndarray:
    """The array the metrics compare, in 0-255 float64, shape (H', W', C')."""
    a, is_uint8 = _to_255(img)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 2:
        a = a[:, :, None]  # gray: raw values, whatever the channel setting
    elif channel == "y":
        if a.shape[2] != 3:
            raise ValueError(f"channel='y' needs RGB, got {a.shape[2]} channels")
        y = a @ (RGB2YCBCR[0] / 255.0) + 16.0
        if is_uint8:
            y = np.round(y)  # MATLAB's rgb2ycbcr returns uint8 for uint8 input
        a = y[:, :, None]
    elif channel != "rgb":
        raise ValueError(f"channel must be 'y' or 'rgb', got {channel!r}")
    if border:
        a = a[border:-border, border:-border]
    return a


def _check(pred: np.ndarray, target: np.ndarray) -> None:
    if np.shape(pred)[:2] != np.shape(target)[:2]:
        raise ValueError(f"shape mismatch: {np.shape(pred)} vs {np.shape(target)}")


def psnr(pred: np.ndarray, target: np.ndarray, border: int = 0, channel: str = "y") -> float:
    """PSNR in dB (peak 255) between two images; see the module docstring."""
    _check(pred, target)
    a, b = to_scored(pred, channel, border), to_scored(target, channel, border)
    mse = float(np.mean((a - b) ** 2))
    if mse == 0:
        return math.inf
    return 10.0 * math.log10(255.0 ** 2 / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def _filter_valid(img: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation of (H, W) with the outer product g g^T."""
    from numpy.lib.stride_tricks import sliding_window_view
    rows = sliding_window_view(img, g.size, axis=0) @ g
    return sliding_window_view(rows, g.size, axis=1) @ g


def ssim(pred: np.ndarray, target: np.ndarray, border: int = 0, channel: str = "y") -> float:
    """Mean SSIM (Wang et al. 2004) over the valid map and channels."""
    _check(pred, target)
    a, b = to_scored(pred, channel, border), to_scored(target, channel, border)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    g = _gaussian_window()
    if min(a.shape[:2]) < g.size:
        raise ValueError(f"SSIM needs images of at least {g.size}x{g.size} after the border shave")
    vals = []
    for c in range(a.shape[2]):
        x, y = a[:, :, c], b[:, :, c]
        mx, my = _filter_valid(x, g), _filter_valid(y, g)
        sxx = _filter_valid(x * x, g) - mx * mx
        syy = _filter_valid(y * y, g) - my * my
        sxy = _filter_valid(x * y, g) - mx * my
        m = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
        vals.append(m.mean())
    return float(np.mean(vals))
