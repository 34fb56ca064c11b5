"""Screentone: how printed manga shows gray, as dots on a regular screen.

Pure numerics on arrays. Training drawings get screentone copies through
``data.screentone_share`` (:class:`kakudai.data.datasets.TrainPairs`), and
``benchmarks/screentone_set.py`` makes a manga-like stand-in set with the same function.
"""

from __future__ import annotations

import numpy as np

__all__ = ["screentone"]


def screentone(img: np.ndarray, period: float = 6.0, supersample: int = 4) -> np.ndarray:
    """A drawing as a printed manga page shows it: gray, with its mid-tones as screentone.

    ``img``: (H, W) or (H, W, 3) uint8. Luma (BT.601) below 60 stays black ink, above
    225 white paper; every other level becomes dots of the matching ink share on a
    45-degree screen of ``period`` pixels, drawn at ``supersample`` times the size and
    box-averaged back (anti-aliased dots, as a scan shows them). (H, W) uint8 out.
    """
    a = np.asarray(img, dtype=np.float64)
    g = a if a.ndim == 2 else 0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2]
    h, w = g.shape
    s = supersample
    g = np.repeat(np.repeat(g / 255.0, s, axis=0), s, axis=1)
    # The screen 1/2 + (cos(k u) + cos(k v)) / 4 with u, v the coordinates turned by 45
    # degrees (k = 2 pi / period) is 1/2 + cos(k' x) cos(k' y) / 2 with k' = k / sqrt(2):
    # an outer product, cheap at any size.
    k = 2 * np.pi / (period * np.sqrt(2))
    screen = 0.5 + 0.5 * np.outer(np.cos(k * np.arange(h * s) / s), np.cos(k * np.arange(w * s) / s))
    out = np.where(g < 60 / 255, 0.0, np.where(g > 225 / 255, 1.0, (g > screen).astype(np.float64)))
    out = out.reshape(h, s, w, s).mean(axis=(1, 3))
    return np.clip(np.round(out * 255), 0, 255).astype(np.uint8)
