"""Colour under transparent pixels (kakudai/ops/alpha.py) and the fringe it causes."""

from __future__ import annotations

import numpy as np
import pytest

import kakudai
from kakudai.ops.alpha import fill_transparent


def _sprite(dtype=np.uint8) -> np.ndarray:
    """An opaque red disk with a soft edge on transparent black (what editors store)."""
    yy, xx = np.mgrid[:64, :64]
    r = np.hypot(yy - 32, xx - 32)
    peak = np.iinfo(dtype).max
    a = np.zeros((64, 64, 4), dtype)
    inside = r < 20
    a[inside, :3] = np.array([230, 40, 40]) * (peak // 255)
    a[..., 3] = (np.clip(21 - r, 0, 1) * peak).astype(dtype)  # 1-pixel anti-aliased rim
    a[a[..., 3] == 0, :3] = 0
    a[(r >= 20) & (a[..., 3] > 0), :3] = np.array([230, 40, 40]) * (peak // 255)
    return a


def test_fill_transparent_takes_the_nearest_visible_colour() -> None:
    px = np.zeros((5, 9, 3), np.uint8)
    alpha = np.zeros((5, 9), np.uint8)
    px[:, :2], alpha[:, :2] = (200, 10, 10), 255   # red on the left
    px[:, 7:], alpha[:, 7:] = (10, 10, 200), 128   # half-transparent blue on the right
    out = fill_transparent(px, alpha)
    assert out.dtype == np.float32
    unit = px / np.float32(255)
    assert np.allclose(out[:, :2], unit[:, :2]) and np.allclose(out[:, 7:], unit[:, 7:])  # visible: kept
    assert np.allclose(out[:, 2], unit[0, 0]) and np.allclose(out[:, 6], unit[0, 8])
    assert np.allclose(fill_transparent(px, np.zeros((5, 9), np.uint8)), unit)  # nothing visible: nothing filled
    far = fill_transparent(px, alpha, rings=1)
    assert np.allclose(far[:, 4], (unit[0, 0] + unit[0, 8]) / 2)  # beyond the rings: the mean
    # The 16-bit version of a picture is filled to the same values.
    assert np.allclose(fill_transparent(px.astype(np.uint16) * 257, alpha), out, atol=1e-6)


@pytest.mark.parametrize("model", ["bicubic", "default"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_no_dark_fringe_around_transparent_edges(model: str, dtype) -> None:
    out = kakudai.upscale(_sprite(dtype), 2, model=model, denoise=None, style="photo")
    visible = out[..., 3] >= np.iinfo(dtype).max // 2
    red = out[visible][:, 0].astype(np.float64) / (np.iinfo(dtype).max // 255)
    # Every visible pixel keeps the disk's red (hidden black used to leak in: down to 50).
    assert red.min() >= 225, red.min()
