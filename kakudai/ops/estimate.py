"""What an image says about its own degradation: noise level, JPEG block grid, JPEG quality.

Pure numerics on arrays, no files (the quantisation tables come from the decoder
in :mod:`kakudai.data.io`):

* :func:`noise_sigma`: Gaussian noise std in 0-255 units, by Immerkaer's
  Laplacian-difference operator (1996) on the image's smooth pixels only (the
  edge-excluding variant of Tai and Yang, 2008), per channel, averaged.
* :func:`blockiness`: how much stronger the pixel steps across an 8x8 grid are
  than the steps inside it, at the grid offset where that ratio peaks (a JPEG
  that was cropped before being saved again keeps a shifted grid). About 1.0
  for images that never were JPEG; it grows as the quality drops.
* :func:`jpeg_quality`: the IJG quality (1-100) whose scaled standard luminance
  table is closest to a JPEG file's own table.
* :func:`jpeg_ringing`: the JPEG trace that survives where :func:`jpeg_history`
  cannot read (line art on white, whose every detailed block holds clipped samples):
  ringing that spreads through an 8x8 block and stops at its edges, far from the
  strokes that caused it.
* :func:`is_gray`: whether an image's colour channels carry one gray picture.
* :func:`flat_fraction`: the share of 3x3 neighbourhoods that are flat to within a
  level or two, which separates drawn images (flat fills: most of the image) from
  photographs (sensor noise and texture: almost none).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

__all__ = ["noise_sigma", "texture_sigma", "blockiness", "jpeg_quality", "ijg_table", "jpeg_history",
           "jpeg_ringing", "Ringing", "flat_fraction", "is_gray", "IJG_LUMA_TABLE"]

# The IJG (libjpeg) standard luminance quantisation table, in natural (row-major) order.
IJG_LUMA_TABLE = np.array([
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99], dtype=np.float64)

# Immerkaer's operator: the difference of two Laplacians, blind to planes and ramps;
# on white noise its output has std 6 * sigma.
_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)


def _as_planes(img: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, C) samples -> float64 (C, H, W) in 0-255 units (uint16 scaled)."""
    a = np.asarray(img)
    scale = 255.0 / 65535.0 if a.dtype == np.uint16 else (255.0 if a.dtype.kind == "f" else 1.0)
    a = a.astype(np.float64) * scale
    return a[None] if a.ndim == 2 else np.moveaxis(a, -1, 0)


def _conv3(p: np.ndarray, k: np.ndarray) -> np.ndarray:
    """'valid' 3x3 correlation of a 2-D plane with ``k``."""
    h, w = p.shape
    out = np.zeros((h - 2, w - 2))
    for dy in range(3):
        for dx in range(3):
            if k[dy, dx]:
                out += k[dy, dx] * p[dy:dy + h - 2, dx:dx + w - 2]
    return out


def _smooth_sigma(planes: np.ndarray, smooth_fraction: float) -> float:
    """Immerkaer's estimate on the ``smooth_fraction`` of pixels with the weakest Sobel
    gradient, per channel, averaged: sqrt(pi / 2) * mean|r| / 6 for Gaussian noise."""
    sobel_x = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64)
    out = []
    for p in planes:
        grad = np.abs(_conv3(p, sobel_x)) + np.abs(_conv3(p, sobel_x.T))
        r = np.abs(_conv3(p, _IMMERKAER))
        keep = grad <= np.quantile(grad, smooth_fraction)
        out.append(math.sqrt(math.pi / 2) * float(r[keep].mean()) / 6.0)
    return float(np.mean(out))


def _box2(planes: np.ndarray) -> np.ndarray:
    """2x2 box average (C, H, W) -> (C, H/2, W/2): white noise std halves, texture does not."""
    c, h, w = planes.shape
    p = planes[:, : h - h % 2, : w - w % 2]
    return (p[:, 0::2, 0::2] + p[:, 1::2, 0::2] + p[:, 0::2, 1::2] + p[:, 1::2, 1::2]) / 4.0


def noise_sigma(img: np.ndarray, smooth_fraction: float = 0.5) -> float:
    """Estimated std of additive white noise, 0-255 units, of (H, W[, C]) samples.

    Two readings of Immerkaer's operator on the smooth pixels (see
    :func:`_smooth_sigma`): e at full size and d after a 2x2 box average. White
    noise contributes sigma to e and sigma / 2 to d, while fine texture (which the
    operator also reads as noise) does not shrink that way, so the white part is
    sqrt((e^2 - d^2) / (3 / 4)). On clean downscaled photos it reads 0-3; on 8-bit
    noise of sigma 10 about 9-10. Images need at least 6 pixels a side.
    """
    planes = _as_planes(img)
    if min(planes.shape[1:]) < 6:
        raise ValueError(f"image too small to estimate noise: {planes.shape[1:]}")
    e = _smooth_sigma(planes, smooth_fraction)
    d = _smooth_sigma(_box2(planes), smooth_fraction)
    return math.sqrt(max(0.0, (e * e - d * d) / 0.75))


def texture_sigma(img: np.ndarray, smooth_fraction: float = 0.5) -> float:
    """Immerkaer's estimate alone (texture and noise together), 0-255 units: an upper
    bound of the noise that also catches noise hidden by strong texture."""
    return _smooth_sigma(_as_planes(img), smooth_fraction)


def _luma(img: np.ndarray, planes: np.ndarray | None = None) -> np.ndarray:
    """BT.601 luma (0-255 units) of ``img``, or of its :func:`_as_planes` when given."""
    planes = _as_planes(img) if planes is None else planes
    if planes.shape[0] >= 3:
        return 0.299 * planes[0] + 0.587 * planes[1] + 0.114 * planes[2]
    return planes[0]


def blockiness(img: np.ndarray, block: int = 8) -> float:
    """Ratio of the mean luma step across ``block``-pixel grid lines to the mean step
    elsewhere, at the grid offset (per axis) where it is largest, over both axes.

    ~1.0 for an image that never was block-coded (no offset stands out); above
    ~1.1 a block grid is visible. Images smaller than 4 blocks a side give 1.0.
    """
    y = _luma(img)
    ratios = []
    for axis in (0, 1):
        d = np.abs(np.diff(y, axis=axis)).mean(axis=1 - axis)  # mean step between line i and i+1
        n = len(d) - len(d) % block
        if n < 4 * block:
            continue
        per_offset = d[:n].reshape(-1, block).mean(axis=0)  # mean step at each grid phase
        best = int(np.argmax(per_offset))
        others = np.delete(per_offset, best).mean()
        ratios.append(per_offset[best] / max(others, 1e-6))
    return float(np.mean(ratios)) if ratios else 1.0


def ijg_table(quality: int) -> np.ndarray:
    """The IJG luminance table (8, 8) at ``quality`` 1-100: s = 5000 / q below 50, else
    200 - 2q; entries floor((t * s + 50) / 100) clamped to 1-255 (libjpeg's rule)."""
    q = int(quality)
    s = 5000.0 / q if q < 50 else 200.0 - 2.0 * q
    return np.clip(np.floor((IJG_LUMA_TABLE * s + 50.0) / 100.0), 1, 255).reshape(8, 8)


# DCT-II basis of JPEG's 8-point transform, orthonormal: F = C @ block @ C.T.
_N = np.arange(8)
_DCT = np.sqrt(2.0 / 8.0) * np.cos(np.pi * (2 * _N[None, :] + 1) * _N[:, None] / 16.0)
_DCT[0] /= np.sqrt(2.0)
# The low frequencies read (zig-zag positions 1-9): most often non-zero, so best sampled.
_LOW = [(0, 1), (1, 0), (2, 0), (1, 1), (0, 2), (0, 3), (1, 2), (2, 1), (3, 0)]


def jpeg_history(img: np.ndarray, max_quality: int = 95, threshold: float = 0.5) -> int | None:
    """The JPEG quality an image was last saved at, read from its pixels, or None.

    A decoded JPEG's 8x8 block DCT coefficients sit on multiples of the
    quantisation steps (up to the rounding of the decoded samples). For each IJG
    quality the score is the mean of cos(2 pi c / step) over the low-frequency
    coefficients larger than half a step: ~1 when the steps match (or divide the
    real ones), ~0 for an image that was never quantised. The answer is the lowest
    quality scoring within ``TIE`` of the best score, if that passes ``threshold``.
    Taking the best rather than the first quality to pass matters on drawings: their
    few unclipped blocks repeat the same edges, so a wrong lattice can pass by chance.
    The grid at the image's origin (a JPEG saved as is) and the one where
    :func:`blockiness` puts it (a cropped JPEG keeps a shifted grid) are both read, and
    the better-scoring one answers. Qualities above ``max_quality`` (steps of 1-2) are not
    told apart from clean images.
    """
    planes = _as_planes(img)
    y = _luma(img, planes) - 128.0
    # Samples clipped at black or white (common in drawings) are off the lattice: their
    # blocks are left out.
    clipped = ((planes <= 0.5) | (planes >= 254.5)).any(axis=0)
    offsets = dict.fromkeys([(0, 0), (_grid_offset(y, 0), _grid_offset(y, 1))])
    found = [r for oy, ox in offsets
             if (r := _quantised_quality(y[oy:, ox:], max_quality, threshold, clipped[oy:, ox:]))]
    return max(found, key=lambda r: r[1])[0] if found else None


# Scores this close to the best count as a tie, which the lowest quality takes: steps
# that divide the real ones score as well as the real ones.
TIE = 0.1


def _quantised_quality(y: np.ndarray, max_quality: int, threshold: float,
                       clipped: np.ndarray | None = None) -> tuple[int, float] | None:
    """(quality, score) of :func:`jpeg_history` on the 8x8 grid that starts at ``y``'s
    origin, leaving out the blocks that hold a ``clipped`` sample; None when no quality
    passes ``threshold``."""
    h, w = y.shape[0] - y.shape[0] % 8, y.shape[1] - y.shape[1] % 8
    if h < 16 or w < 16:
        return None
    blocks = y[:h, :w].reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3).reshape(-1, 8, 8)
    if clipped is not None:
        bad = clipped[:h, :w].reshape(h // 8, 8, w // 8, 8).any(axis=(1, 3)).reshape(-1)
        blocks = blocks[~bad]
    coef = np.einsum("ui,kij,vj->kuv", _DCT, blocks, _DCT)
    low = np.stack([coef[:, u, v] for u, v in _LOW], axis=1)  # (blocks, 9)
    scores: dict[int, float] = {}
    for q in range(1, max_quality + 1):
        steps = np.array([ijg_table(q)[u, v] for u, v in _LOW])
        if steps.min() < 2:
            continue
        big = np.abs(low) > steps / 2.0
        if big.sum() < 50:  # too few non-zero coefficients to judge at these steps
            continue
        scores[q] = float(np.cos(2.0 * np.pi * low / steps)[big].mean())
    if not scores or max(scores.values()) <= threshold:
        return None
    best = max(scores.values())
    q = min(q for q, v in scores.items() if v >= best - TIE)
    return q, scores[q]


def _grid_offset(y: np.ndarray, axis: int, block: int = 8) -> int:
    """Where the 8-pixel grid lines of a block-coded image fall along ``axis`` (0-7)."""
    d = np.abs(np.diff(y, axis=axis)).mean(axis=1 - axis)
    n = len(d) - len(d) % block
    if n < 2 * block:
        return 0
    return (int(np.argmax(d[:n].reshape(-1, block).mean(axis=0))) + 1) % block


def _dilate(mask: np.ndarray, reach: int) -> np.ndarray:
    """Boolean (H, W) ``mask`` grown by ``reach`` pixels in every direction (a square
    of side 2 * reach + 1: Chebyshev distance), separably: rows, then columns."""
    out = mask.copy()
    for m in (out, out.T):  # views: growing down the columns of out.T grows out along rows
        src = m.copy()
        for d in range(1, reach + 1):
            m[d:] |= src[:-d]
            m[:-d] |= src[d:]
    return out


class Ringing(NamedTuple):
    """What :func:`jpeg_ringing` reads (see there)."""

    steps: int
    alignment: float
    room: float


def jpeg_ringing(img: np.ndarray, reach: int = 2, ink_below: float = 250.0) -> Ringing:
    """How much JPEG ringing shows on a white (or black) background, away from strokes.

    ``steps``: the number of neighbouring pixel pairs, both more than ``reach`` pixels
    away from any "ink" (a sample further than 255 - ``ink_below`` from the background
    level in some channel), of which one is the pure background level in every channel
    and the other is not. ``alignment``: per axis, the steps on the most common phase of
    an 8-pixel grid less those on the phase half a block away, summed over both axes, as
    a share of ``steps``: near 0 when the steps have nothing to do with a grid, and also
    for a 4-pixel grid (a JPEG shrunk to half its size, whose blocks are not this
    image's blocks). ``room``: the share of the image's pixels that are pure background
    more than ``reach`` but at most 7 pixels from ink, where ringing would show.

    On a clean drawing the background is pure up to the strokes' anti-aliasing, which
    a resampling kernel keeps within about two pixels, so ``steps`` is 0 or nearly. JPEG
    spreads faint ringing (a few levels) through every 8x8 block a stroke touches and
    not beyond: hundreds to thousands of steps, gathered on the block grid. This is
    the trace of line art on white, where :func:`jpeg_history` has no block to read
    (each one with detail holds samples clipped at 0 or 255, which are off the
    quantisation lattice). It does not tell the quality. The white background and the
    black one are both read; the one with more steps (then more room) answers.
    """
    planes = _as_planes(img)
    found = Ringing(0, 0.0, 0.0)
    for p in (planes, 255.0 - planes):  # white background, then black (inverted)
        pure = (p >= 254.5).all(axis=0)
        ink = (p < ink_below).any(axis=0)
        far = ~_dilate(ink, reach)
        steps, on_grid = 0, 0
        for pm, fm in ((pure, far), (pure.T, far.T)):  # steps between rows, then columns
            step = (pm[1:] != pm[:-1]) & fm[1:] & fm[:-1]
            per_line = step.sum(axis=1)  # steps between line i and i + 1
            m = len(per_line) - len(per_line) % 8
            phases = per_line[:m].reshape(-1, 8).sum(axis=0)
            steps += int(phases.sum())
            if m:
                best = int(np.argmax(phases))
                on_grid += int(phases[best]) - int(phases[(best + 4) % 8])
        room = float((pure & far & _dilate(ink, 7)).mean()) if pure.size else 0.0
        reading = Ringing(steps, on_grid / steps if steps else 0.0, room)
        if (reading.steps, reading.room) > (found.steps, found.room):
            found = reading
    return found


def jpeg_quality(luma_table) -> int:
    """The IJG quality (1-100) whose scaled standard luminance table best matches
    ``luma_table`` (64 values in natural order, as Pillow's ``im.quantization[0]``).

    IJG scaling: s = 5000 / q below 50, else 200 - 2q; entries floor((t * s + 50) / 100),
    clamped to 1-255. Tables of other encoders give the nearest IJG quality.
    """
    t = np.asarray(list(luma_table), dtype=np.float64).reshape(-1)
    if t.size != 64:
        raise ValueError(f"a quantisation table has 64 entries, got {t.size}")
    qs = np.arange(1, 101)
    s = np.where(qs < 50, 5000.0 / qs, 200.0 - 2.0 * qs)
    tables = np.clip(np.floor((IJG_LUMA_TABLE[None] * s[:, None] + 50.0) / 100.0), 1, 255)
    err = np.abs(np.log(tables) - np.log(np.maximum(t[None], 1.0))).sum(axis=1)
    return int(qs[int(np.argmin(err))])


def _in_sample_units(levels: float, dtype: np.dtype) -> float:
    """``levels`` (0-255 units) in the units of samples of ``dtype``: uint8 as they are,
    uint16 x 257, float in [0, 1] / 255 (plus a hair, so equality holds in float32)."""
    if dtype == np.uint8:
        return levels
    if dtype == np.uint16:
        return levels * 257.0
    return levels / 255.0 + 1e-6


def is_gray(img: np.ndarray, tolerance: float = 2.0, share: float = 0.999) -> bool:
    """Whether ``img`` is gray: one channel (H, W) or (H, W, 1), or colour channels that
    agree to within ``tolerance`` levels (0-255 units; uint16 and float [0, 1] images
    are scaled) at ``share`` of the pixels or more, as a gray page saved in colour, or
    through a colour JPEG, is. A tinted scan (sepia, yellowed paper) is not gray."""
    a = np.asarray(img)
    if a.ndim == 2 or a.shape[2] == 1:
        return True
    rgb = a[:, :, :3]
    spread = rgb.max(axis=2) - rgb.min(axis=2)  # max >= min: no wrap-around in unsigned types
    return bool((spread <= _in_sample_units(tolerance, a.dtype)).mean() >= share)


def flat_fraction(img: np.ndarray, tolerance: float = 1.0) -> float:
    """Share of the image's 3x3 neighbourhoods (valid positions) in which every
    channel varies by at most ``tolerance`` levels (0-255 units; uint16 and float
    [0, 1] images are scaled). Flat-colour illustrations score 0.4-0.95, clean
    photographs 0-0.5 (an over-exposed sky or a screenshot being the high end).
    0.0 for images smaller than 3x3."""
    a = np.asarray(img)
    if a.ndim == 2:
        a = a[:, :, None]
    h, w = a.shape[:2]
    if h < 3 or w < 3:
        return 0.0
    limit = _in_sample_units(tolerance, a.dtype)
    if a.dtype not in (np.uint8, np.uint16):  # float in [0, 1]
        a = a.astype(np.float32)
    hi = a[:h - 2, :w - 2].copy()  # running max / min over the 3x3 window, in the samples' type
    lo = hi.copy()
    for dy in range(3):
        for dx in range(3):
            v = a[dy:dy + h - 2, dx:dx + w - 2]
            np.maximum(hi, v, out=hi)
            np.minimum(lo, v, out=lo)
    return float(((hi - lo).max(axis=-1) <= limit).mean())
