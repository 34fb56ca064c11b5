"""Reading an input's degradation, so that the default needs no level from the user.

:func:`assess` looks at what a file tells (a JPEG's own quantisation tables give
its quality) and at the pixels (the quantised DCT coefficients of a PNG that was
once a JPEG, or where clipping hides them, as in line art on white, the ringing
such a JPEG leaves on its background; the white-noise level, the texture level;
:mod:`kakudai.ops.estimate`) and returns an :class:`Assessment`. Under automatic denoising (the default of
``kakudai upscale``) degraded images are cleaned at their input size by the
restorers of :data:`kakudai.zoo.AUTO_RESTORERS`, at the level read here, and then upscaled;
clean images are upscaled as they are, so they keep the published-protocol
figures exactly.

The thresholds were set on downscaled photos (Set5, Set14, Kodak24 at x2-x4):
with them no clean image is taken for degraded, while JPEG at quality 75 and
8-bit noise of sigma 10 are recognised in 98-100% of images (noise of sigma 5 in
about half: mild enough for either model).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ops.estimate import Ringing, flat_fraction, is_gray, jpeg_history, jpeg_ringing, noise_sigma, texture_sigma

__all__ = ["Assessment", "assess", "style_of", "JPEG_MAX_QUALITY", "NOISE_MIN_SIGMA",
           "TEXTURE_MIN_SIGMA", "DRAWN_MIN_FLAT", "DRAWN_MIN_FLAT_CLEANED", "RINGING_MIN_STEPS",
           "RINGING_MIN_ALIGNMENT", "RINGING_QUALITY", "RINGING_MIN_ROOM", "RINGING_MIN_FLAT_GRAY"]

# A JPEG saved at this quality or below counts as degraded (above it the artifacts
# are below what the flagship tolerates, and pixel evidence is unreliable).
JPEG_MAX_QUALITY = 90
# Line art on white hides its quantisation lattice (every block with detail holds clipped
# samples). A drawing (flat share DRAWN_MIN_FLAT, read as it is) is read as a JPEG when its
# ringing (:func:`kakudai.ops.estimate.jpeg_ringing`, over the crops read) makes at least
# this many background steps away from the strokes, with at least this grid alignment ...
RINGING_MIN_STEPS = 60
RINGING_MIN_ALIGNMENT = 0.1
# ... and cleaned as a JPEG of this quality, since ringing does not tell the quality (the
# middle of the common range: cleaning at 60 costs at most about 0.5 dB against the true
# quality between 35 and 90 on compressed clip art).
RINGING_QUALITY = 60
# Conversely, a lattice reading on a drawing with at least this share of plain background
# next to its strokes and not one ringing step there is a chance fit of repeated edges (a
# JPEG of it would ring), and is dropped.
RINGING_MIN_ROOM = 0.02
# Measured on LR images (MATLAB bicubic x2-x4): clean drawings (Art10, 95 cartoons,
# 54 held-out openclipart drawings) show at most 167 steps at alignment 0.04 or 15 steps;
# the lattice alone read 10 of 280 clean drawings as JPEGs, all with 0 steps and room
# 0.024-0.127; compressed clip art and Art10 (quality 30-90) are read as JPEGs in 745 of 864
# cases against 574 by the lattice alone. Photographs are left to the lattice reading:
# a white sky makes steps too, and photos that were JPEGs before being shrunk align them.
# Gray images are read for ringing from this lower flat share: a manga page's dot
# screens lower its share, and its ink and paper clip every block the lattice would
# read. Of the gray versions of Set14, Kodak24 and BSD200 (x2-x4) with a flat share of
# 0.4 or more, one (a slide) is read as a JPEG.
RINGING_MIN_FLAT_GRAY = 0.4
# White noise (0-255 units) from which an image counts as noisy ...
NOISE_MIN_SIGMA = 3.5
# ... or total fine-scale energy (texture plus noise) from which it does: strong noise on
# strong texture, where the white-noise reading alone can miss it.
TEXTURE_MIN_SIGMA = 8.5
# An image is taken for a drawing (flat fills, hard outlines) when at least this share of
# its 3x3 neighbourhoods is flat to one level (:func:`kakudai.ops.estimate.flat_fraction`).
# Measured on LR images (x2-x4 MATLAB bicubic of the benchmark sets): illustrations 0.56-0.91
# (Art10), photographs 0-0.46 (Set5, Set14, Kodak24, BSD200; the top one a slide
# screenshot, 0.50 at full size). After JPEG quality 75 and automatic cleaning (ringing
# breaks up flat fills) photographs stay below 0.34 while illustrations spread over
# 0.44-0.76 at x2 and 0.24-0.64 at x4: a small compressed drawing may be taken for a
# photo (the safe side); a photo is not taken for a drawing.
DRAWN_MIN_FLAT = 0.5
DRAWN_MIN_FLAT_CLEANED = 0.4
# Smaller images are not read (a few hundred pixels of texture look like noise).
MIN_SIDE = 32
# Larger images are read on a grid of crops (8-pixel aligned, so a JPEG's blocks stay in
# place): 2 x 2 for the degradation, 3 x 3 for the style (drawings often leave their corners
# empty).
CROP = 256
DEGRADATION_GRID = 2
STYLE_GRID = 3


@dataclass(frozen=True)
class Assessment:
    """What an image shows of its history.

    ``jpeg_quality``: the IJG quality it was last saved at (None: not a JPEG, as far
    as can be told); ``jpeg_from``: "file" (its quantisation tables), "pixels" (its
    quantised DCT coefficients), "ringing" (a JPEG of unknown quality, taken as
    RINGING_QUALITY) or "".
    ``noise_sigma``: estimated white noise, ``texture_sigma``: fine-scale energy
    (texture and noise), both 0-255 units.
    """

    jpeg_quality: int | None
    jpeg_from: str
    noise_sigma: float
    texture_sigma: float

    @property
    def jpeg(self) -> bool:
        return self.jpeg_quality is not None and self.jpeg_quality <= JPEG_MAX_QUALITY

    @property
    def noisy(self) -> bool:
        return self.noise_sigma >= NOISE_MIN_SIGMA or self.texture_sigma >= TEXTURE_MIN_SIGMA

    @property
    def degraded(self) -> bool:
        return self.jpeg or self.noisy

    def describe(self) -> str:
        """One line for verbose output, e.g. ``JPEG q75 (file), noise 1.2: degraded``."""
        if self.jpeg_from == "ringing":
            jpeg = f"JPEG of unknown quality (ringing), taken as q{self.jpeg_quality}"
        else:
            jpeg = f"JPEG q{self.jpeg_quality} ({self.jpeg_from})" if self.jpeg_quality else "no JPEG trace"
        parts = [jpeg,
                 f"noise {self.noise_sigma:.1f}", f"texture {self.texture_sigma:.1f}"]
        return ", ".join(parts) + (": degraded" if self.degraded else ": clean")


def _crops(a: np.ndarray, per_side: int) -> list[np.ndarray]:
    """The whole image if it holds no more than ``per_side``^2 crops, else CROP-sided
    crops on a ``per_side`` x ``per_side`` grid spread over it (fewer along a side
    shorter than CROP), each starting on the 8-pixel grid."""
    h, w = a.shape[:2]
    if h * w <= per_side * per_side * CROP * CROP:
        return [a]

    def starts(n: int) -> list[int]:
        return sorted({min(n - min(n, CROP), v) // 8 * 8
                       for v in np.linspace(0, max(0, n - CROP), per_side).astype(int)})
    return [a[y:y + CROP, x:x + CROP] for y in starts(h) for x in starts(w)]


def assess(pixels: np.ndarray, file_quality: int | None = None) -> Assessment:
    """Assess an image: ``pixels`` (H, W[, C]) uint8 / uint16 / float in [0, 1].

    ``file_quality``: the quality read from the file's JPEG tables, when it was a
    JPEG file (:attr:`kakudai.data.io.ImageData.jpeg_quality`); it takes precedence
    over what the pixels show. Images under MIN_SIDE pixels a side are too small to
    read noise from: only a file's own JPEG quality counts for them.
    """
    a = np.asarray(pixels)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if min(a.shape[:2]) < MIN_SIDE:
        return Assessment(file_quality, "file" if file_quality else "", 0.0, 0.0)
    crops = _crops(a, DEGRADATION_GRID)
    noise = float(np.median([noise_sigma(c) for c in crops]))
    texture = float(np.median([texture_sigma(c) for c in crops]))
    if file_quality is not None:
        return Assessment(int(file_quality), "file", noise, texture)
    found = [q for c in crops if (q := jpeg_history(c)) is not None]
    drawn = RINGING_MIN_FLAT_GRAY if is_gray(a) else DRAWN_MIN_FLAT
    ringing = _ringing(crops) if _flat_share(crops) >= drawn else None
    if found and not (ringing is not None and ringing.steps == 0 and ringing.room >= RINGING_MIN_ROOM):
        return Assessment(min(found), "pixels", noise, texture)
    if (ringing is not None and ringing.steps >= RINGING_MIN_STEPS
            and ringing.alignment >= RINGING_MIN_ALIGNMENT):
        return Assessment(RINGING_QUALITY, "ringing", noise, texture)
    return Assessment(None, "", noise, texture)


def _flat_share(crops: list[np.ndarray]) -> float:
    """Mean :func:`kakudai.ops.estimate.flat_fraction` of the crops: what tells drawings
    (DRAWN_MIN_FLAT and above) from photographs."""
    return float(np.mean([flat_fraction(c) for c in crops]))


def _ringing(crops: list[np.ndarray]) -> Ringing:
    """:func:`kakudai.ops.estimate.jpeg_ringing` over all the crops: steps summed,
    alignment weighted by steps, room averaged."""
    readings = [jpeg_ringing(c) for c in crops]
    steps = sum(r.steps for r in readings)
    on_grid = sum(r.steps * r.alignment for r in readings)
    return Ringing(steps, on_grid / steps if steps else 0.0, float(np.mean([r.room for r in readings])))


def style_of(pixels: np.ndarray, cleaned: bool = False, gray: bool | None = None) -> str:
    """``"illustration"`` for drawn images (flat colour, line art, most screenshots of
    drawings), ``"manga"`` for gray ones (:func:`kakudai.ops.estimate.is_gray`), else
    ``"photo"``; ``pixels`` (H, W[, C]) uint8 / uint16 / float in [0, 1]; ``cleaned``:
    the pixels come out of automatic JPEG/noise cleaning (a lower threshold,
    :data:`DRAWN_MIN_FLAT_CLEANED`); ``gray``: whether the image is gray, when known
    from before the cleaning (None: read from ``pixels``). Large images are read on a
    grid of crops. Images under MIN_SIDE pixels a side count as photos."""
    a = np.asarray(pixels)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if min(a.shape[:2]) < MIN_SIDE:
        return "photo"
    flat = _flat_share(_crops(a, STYLE_GRID))
    if flat < (DRAWN_MIN_FLAT_CLEANED if cleaned else DRAWN_MIN_FLAT):
        return "photo"
    return "manga" if (is_gray(a) if gray is None else gray) else "illustration"
