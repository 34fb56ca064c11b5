"""Realistic degradations for training pairs: blur, resize, noise and JPEG in two stages.

The benchmark LR (a clean image shrunk by MATLAB bicubic) is not what users own:
their files were blurred by a lens or a scanner, resized by some program,
noisy from a sensor, and saved as JPEG, sometimes twice. This module builds
such LR images from clean HR patches, in the manner that BSRGAN (Zhang et al.,
2021: random order of blur, downsampling, noise and JPEG) and Real-ESRGAN (Wang
et al., 2021: the same operations applied in two stages) describe:

* stage 1: blur the HR (optional), shrink it to the LR size with a random
  interpolation (MATLAB bicubic, area, bilinear, bicubic), then the stage's
  other operations (extra down-and-up resize, noise, JPEG) in fixed or random
  order; the stage ends as a file does, clipped and rounded to 8 bits;
* stage 2 (with a probability): blur, resize, noise, JPEG again at the LR size,
  again ending at 8 bits.

Every operation is a small function in :data:`OPS` taking an image and the
numpy ``Generator``; all randomness comes from that generator, so a seeded
run is deterministic. Images are float32 torch tensors (1, C, H, W) in [0, 1];
noise may leave [0, 1] until the stage's quantisation clips it.

Sigma values are in 0-255 units for noise; blur sigmas are in LR pixels (the
HR blur uses ``sigma * scale`` HR pixels), so one config serves every scale.
The same operations give the fixed degradations of ``kakudai eval --degrade``
(:func:`parse_spec`, :func:`apply_spec`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..ops.resize import imresize_torch
from .degrade import jpeg_roundtrip
from .io import tensor_to_uint8, uint8_to_tensor

__all__ = ["DegradeConfig", "OPS", "blur_kernel", "sinc_kernel", "blur", "resize_to", "add_noise",
           "jpeg", "quantize", "degrade_pair", "parse_spec", "apply_spec", "DOWN_MODES",
           "BLUR_KINDS"]

DOWN_MODES = ("matlab", "area", "bilinear", "bicubic")
BLUR_KINDS = ("iso", "aniso", "generalized", "plateau", "sinc")
STAGE_OPS = ("resize", "noise", "jpeg")  # the ops after the shrink, shuffled with ``shuffle``


@dataclass
class DegradeConfig:
    """Parameters of the two-stage pipeline (``[data.degrade]`` in a training config).

    Probabilities are per patch; ranges are uniform ``[lo, hi]``. ``enabled =
    false`` (the default) keeps the benchmark degradation (MATLAB bicubic only).
    """
    enabled: bool = False
    clean_prob: float = 0.0  # patches with nothing but the MATLAB-bicubic shrink
    shuffle: bool = False  # random order of resize / noise / JPEG within a stage
    # Blur of the HR before the shrink, and of the LR in stage 2.
    blur_prob: float = 0.0
    blur_kinds: dict[str, float] = field(default_factory=lambda: {"iso": 1.0})  # kind -> weight
    blur_sigma: list[float] = field(default_factory=lambda: [0.2, 1.5])  # LR pixels
    blur_beta: list[float] = field(default_factory=lambda: [0.5, 4.0])  # generalized / plateau shape
    sinc_cutoff: list[float] = field(default_factory=lambda: [math.pi / 3, math.pi])  # radians per LR pixel
    # The shrink to the LR size: interpolation -> weight.
    down_modes: dict[str, float] = field(default_factory=lambda: {"matlab": 1.0})
    # Extra resize at the LR size: shrink by a factor in resize_range, then back up.
    resize_prob: float = 0.0
    resize_range: list[float] = field(default_factory=lambda: [0.5, 1.0])
    # Noise: Gaussian (colour, or one gray plane with noise_gray_prob), or Poisson (shot) noise.
    noise_prob: float = 0.0
    noise_sigma: list[float] = field(default_factory=lambda: [1.0, 25.0])  # 0-255 units
    noise_gray_prob: float = 0.4
    poisson_prob: float = 0.0  # of the noisy patches
    # Photon counts at white: std at intensity v is sqrt(v / peak) (log-uniform draw).
    poisson_peak: list[float] = field(default_factory=lambda: [100.0, 3000.0])
    # Camera-like chroma noise: extra noise on Cb/Cr only, low-passed (blotchy), of the noisy patches.
    chroma_noise_prob: float = 0.0
    # JPEG through libjpeg (Pillow), 4:2:0 chroma for colour images.
    jpeg_prob: float = 0.0
    jpeg_quality: list[int] = field(default_factory=lambda: [30, 95])
    # Stage 2: its probability and how likely each op is in it (relative to stage 1's).
    second_stage_prob: float = 0.0
    second_blur_prob: float = 0.0
    second_blur_sigma: list[float] = field(default_factory=lambda: [0.2, 0.8])


# ----------------------------------------------------------------------------- kernels
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    r = np.arange(size, dtype=np.float64) - (size - 1) / 2
    return np.meshgrid(r, r, indexing="ij")


def blur_kernel(kind: str, sigma: tuple[float, float], theta: float = 0.0, beta: float = 2.0,
                size: int | None = None) -> np.ndarray:
    """A normalised 2-D blur kernel (float64, odd side ``size``, sums to 1).

    ``kind``: "iso" / "aniso" Gaussian, "generalized" Gaussian exp(-q^(beta/2)) or
    "plateau" 1 / (1 + q^beta), where q = x^T S^-1 x with S the covariance of the
    principal sigmas ``sigma`` = (s1, s2) rotated by ``theta`` radians. "iso"
    uses s1 for both axes. ``beta = 2`` makes "generalized" the Gaussian.
    """
    s1, s2 = float(sigma[0]), float(sigma[1] if kind != "iso" else sigma[0])
    if min(s1, s2) <= 0:
        raise ValueError(f"blur sigma must be positive, got {sigma}")
    if size is None:
        size = 2 * math.ceil(3 * max(s1, s2)) + 1
    if size % 2 == 0:
        raise ValueError(f"kernel size must be odd, got {size}")
    c, s = math.cos(theta), math.sin(theta)
    rot = np.array([[c, -s], [s, c]])
    cov = rot @ np.diag([s1 * s1, s2 * s2]) @ rot.T
    inv = np.linalg.inv(cov)
    yy, xx = _grid(size)
    q = inv[0, 0] * xx * xx + (inv[0, 1] + inv[1, 0]) * xx * yy + inv[1, 1] * yy * yy
    if kind in ("iso", "aniso"):
        k = np.exp(-0.5 * q)
    elif kind == "generalized":
        k = np.exp(-0.5 * np.power(q, beta / 2.0))
    elif kind == "plateau":
        k = 1.0 / (1.0 + np.power(q, beta))
    else:
        raise ValueError(f"unknown blur kind {kind!r}; known: {', '.join(BLUR_KINDS)}")
    return k / k.sum()


def sinc_kernel(cutoff: float, size: int) -> np.ndarray:
    """A circular low-pass (2-D sinc, Bessel J1) kernel of cutoff ``cutoff`` radians per
    pixel (pi = no filtering), odd side ``size``, sums to 1. It rings near sharp edges
    the way an over-sharpened or resampled image does."""
    if size % 2 == 0:
        raise ValueError(f"kernel size must be odd, got {size}")
    yy, xx = _grid(size)
    r = np.hypot(xx, yy)
    k = np.empty_like(r)
    near = r < 1e-8
    k[near] = cutoff * cutoff / (4 * math.pi)
    rr = r[~near]
    k[~near] = cutoff * _bessel_j1(cutoff * rr) / (2 * math.pi * rr)
    return k / k.sum()


def _bessel_j1(x: np.ndarray) -> np.ndarray:
    """Bessel J1 by its integral (1/pi) * int_0^pi cos(t - x sin t) dt (numpy has no J1)."""
    t = np.linspace(0.0, math.pi, 257)
    vals = np.cos(t[None, :] - np.asarray(x, dtype=np.float64).reshape(-1, 1) * np.sin(t)[None, :])
    return (np.trapezoid(vals, t, axis=1) / math.pi).reshape(np.shape(x))


def blur(x: torch.Tensor, kernel: np.ndarray) -> torch.Tensor:
    """Convolve each channel of (1, C, H, W) with ``kernel`` (reflected borders)."""
    k = torch.from_numpy(np.ascontiguousarray(kernel, dtype=np.float32))
    c = x.shape[1]
    pad = k.shape[-1] // 2
    mode = "reflect" if min(x.shape[-2:]) > pad else "replicate"
    xp = F.pad(x, (pad, pad, pad, pad), mode=mode)
    return F.conv2d(xp, k.expand(c, 1, *k.shape), groups=c)


def _random_kernel(rng: np.random.Generator, cfg: DegradeConfig, sigma_range, pixels: float) -> np.ndarray:
    """A kernel of a kind drawn from ``cfg.blur_kinds``, sigmas from ``sigma_range`` (LR
    pixels) times ``pixels`` (HR pixels per LR pixel)."""
    kinds = list(cfg.blur_kinds)
    w = np.array([cfg.blur_kinds[k] for k in kinds], dtype=np.float64)
    kind = kinds[int(rng.choice(len(kinds), p=w / w.sum()))]
    lo, hi = (float(v) * pixels for v in sigma_range)
    if kind == "sinc":
        size = 2 * int(rng.integers(3, 8)) + 1
        lo_c, hi_c = (float(v) for v in cfg.sinc_cutoff)
        return sinc_kernel(float(rng.uniform(lo_c, hi_c)) / pixels, size)
    s1 = float(rng.uniform(lo, hi))
    s2 = float(rng.uniform(lo, hi)) if kind != "iso" else s1
    theta = float(rng.uniform(0, math.pi))
    beta = float(rng.uniform(*cfg.blur_beta))
    return blur_kernel(kind, (s1, s2), theta, beta)


# ----------------------------------------------------------------------------- ops
def resize_to(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """Resize (1, C, H, W) to ``size`` (h, w) with ``mode`` in :data:`DOWN_MODES`.

    "matlab" is the benchmark's antialiased bicubic; "area" averages; "bilinear"
    and "bicubic" are torch's (no antialiasing, like most image programs' fast paths).
    """
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if mode == "matlab":
        return imresize_torch(x, size=size)
    if mode == "area":
        return F.interpolate(x, size=size, mode="area")
    if mode in ("bilinear", "bicubic"):
        return F.interpolate(x, size=size, mode=mode, align_corners=False)
    raise ValueError(f"unknown resize mode {mode!r}; known: {', '.join(DOWN_MODES)}")


def add_noise(x: torch.Tensor, sigma: float, rng: np.random.Generator, gray: bool = False) -> torch.Tensor:
    """Gaussian noise of std ``sigma`` (0-255 units), per channel or one plane for all."""
    c, h, w = x.shape[1:]
    n = rng.standard_normal((1, 1 if gray else c, h, w), dtype=np.float32) * np.float32(sigma / 255.0)
    return x + torch.from_numpy(n)


def add_poisson(x: torch.Tensor, peak: float, rng: np.random.Generator, gray: bool = False) -> torch.Tensor:
    """Shot noise of a sensor that counts ``peak`` photons at white: counts ~ Poisson(v * peak),
    divided by ``peak``, so the noise std at intensity v is sqrt(v / peak) (on [0, 1]).
    ``gray``: one noise plane from the luma, added to every channel."""
    v = x.clamp(0, 1).numpy()
    if gray and v.shape[1] == 3:
        v = 0.299 * v[:, :1] + 0.587 * v[:, 1:2] + 0.114 * v[:, 2:3]
    noisy = rng.poisson(v * peak).astype(np.float32) / np.float32(peak)
    return x + torch.from_numpy(noisy - v.astype(np.float32))


def add_chroma_noise(x: torch.Tensor, sigma: float, rng: np.random.Generator) -> torch.Tensor:
    """Camera-like colour noise: blotchy (low-passed) noise on the chroma axes only."""
    if x.shape[1] != 3:
        return x
    h, w = x.shape[-2:]
    n = torch.from_numpy(rng.standard_normal((1, 2, h, w), dtype=np.float32))
    n = blur(n, blur_kernel("iso", (1.0, 1.0))) * np.float32(2.0 * sigma / 255.0)
    cb, cr = n[:, :1], n[:, 1:]
    # RGB change of a Cb/Cr change (BT.601, full range): luma unchanged.
    return x + torch.cat([1.402 * cr, -0.344136 * cb - 0.714136 * cr, 1.772 * cb], dim=1)


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Clip to [0, 1] and round to 8-bit levels: what saving an 8-bit file does."""
    return torch.round(x.clamp(0, 1) * 255.0) / 255.0


def jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """JPEG round trip through libjpeg at ``quality`` (4:2:0 for colour); 8-bit in and out."""
    u8 = tensor_to_uint8(x)
    return uint8_to_tensor(jpeg_roundtrip(u8[:, :, 0] if u8.shape[2] == 1 else u8, int(quality), "4:2:0"))


def _op_resize(x, rng, cfg):
    f = float(rng.uniform(*cfg.resize_range))
    h, w = x.shape[-2:]
    modes = [m for m in DOWN_MODES if m != "matlab"]
    small = (max(1, round(h * f)), max(1, round(w * f)))
    x = resize_to(x, small, modes[int(rng.integers(len(modes)))])
    return resize_to(x, (h, w), modes[int(rng.integers(len(modes)))])


def _op_noise(x, rng, cfg):
    gray = rng.random() < cfg.noise_gray_prob
    if cfg.poisson_prob > 0 and rng.random() < cfg.poisson_prob:
        x = add_poisson(x, 10.0 ** float(rng.uniform(*np.log10(cfg.poisson_peak))), rng, gray)
    else:
        x = add_noise(x, float(rng.uniform(*cfg.noise_sigma)), rng, gray)
    if cfg.chroma_noise_prob > 0 and rng.random() < cfg.chroma_noise_prob:
        x = add_chroma_noise(x, float(rng.uniform(*cfg.noise_sigma)), rng)
    return x


def _op_jpeg(x, rng, cfg):
    lo, hi = (int(v) for v in cfg.jpeg_quality)
    return jpeg(quantize(x), int(rng.integers(lo, hi + 1)))


# The operations a stage may apply after the shrink: name -> (probability field, function).
OPS: dict[str, tuple[str, Callable]] = {
    "resize": ("resize_prob", _op_resize),
    "noise": ("noise_prob", _op_noise),
    "jpeg": ("jpeg_prob", _op_jpeg),
}


def _stage(x: torch.Tensor, rng: np.random.Generator, cfg: DegradeConfig) -> torch.Tensor:
    order = list(STAGE_OPS)
    if cfg.shuffle:
        order = [order[i] for i in rng.permutation(len(order))]
    for name in order:
        prob_field, fn = OPS[name]
        if rng.random() < float(getattr(cfg, prob_field)):
            x = fn(x, rng, cfg)
    return quantize(x)


def degrade_pair(hr: np.ndarray, scale: int, rng: np.random.Generator, cfg: DegradeConfig) -> np.ndarray:
    """The LR of one HR patch under the pipeline: uint8 (H, W, C) -> uint8 (H/s, W/s, C).

    H and W must be multiples of ``scale``. With probability ``clean_prob`` (or
    when the config is not enabled) the LR is the benchmark's MATLAB bicubic.
    """
    h, w = hr.shape[:2]
    if h % scale or w % scale:
        raise ValueError(f"HR patch {h}x{w} is not a multiple of the scale {scale}")
    size = (h // scale, w // scale)
    x = uint8_to_tensor(np.ascontiguousarray(hr)[None])
    if not cfg.enabled or rng.random() < cfg.clean_prob:
        return tensor_to_uint8(quantize(imresize_torch(x, size=size)))
    if rng.random() < cfg.blur_prob:
        x = blur(x, _random_kernel(rng, cfg, cfg.blur_sigma, float(scale)))
    modes = list(cfg.down_modes)
    wts = np.array([cfg.down_modes[m] for m in modes], dtype=np.float64)
    x = resize_to(x, size, modes[int(rng.choice(len(modes), p=wts / wts.sum()))])
    x = _stage(x, rng, cfg)
    if rng.random() < cfg.second_stage_prob:
        if rng.random() < cfg.second_blur_prob:
            x = blur(x, _random_kernel(rng, cfg, cfg.second_blur_sigma, 1.0))
        x = _stage(x, rng, cfg)
    return tensor_to_uint8(x)


# ----------------------------------------------------------------------------- fixed chains
SPEC_OPS = ("blur", "noise", "jpeg")


def parse_spec(spec: str) -> list[tuple[str, float]]:
    """A fixed degradation chain, e.g. ``"blur:0.8,noise:5,jpeg:80"`` -> [("blur", 0.8), ...].

    ``blur:S`` Gaussian blur of sigma S LR pixels; ``noise:S`` Gaussian colour noise of
    sigma S (0-255 units); ``jpeg:Q`` JPEG at quality Q, 4:2:0. Applied in the order given.
    """
    chain = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        name, _, value = part.partition(":")
        name = name.strip().lower()
        if name not in SPEC_OPS or not value:
            raise ValueError(f"bad degradation {part!r}: expected one of "
                             f"{', '.join(o + ':VALUE' for o in SPEC_OPS)}")
        try:
            v = float(value)
        except ValueError:
            raise ValueError(f"bad degradation {part!r}: {value!r} is not a number") from None
        if name == "jpeg" and not (1 <= v <= 100 and v == int(v)):
            raise ValueError(f"bad degradation {part!r}: JPEG quality must be an integer in 1-100")
        if name in ("blur", "noise") and not v > 0:
            raise ValueError(f"bad degradation {part!r}: the value must be positive")
        chain.append((name, v))
    if not chain:
        raise ValueError("empty degradation spec")
    return chain


def apply_spec(lr: np.ndarray, chain: list[tuple[str, float]], rng: np.random.Generator) -> np.ndarray:
    """Apply a parsed chain to a uint8 image (H, W) or (H, W, 3); uint8 of the same shape out.

    Each step ends at 8 bits (clipped and rounded), as a saved file does.
    """
    gray = lr.ndim == 2
    x = torch.from_numpy(np.ascontiguousarray(lr[:, :, None] if gray else lr)).permute(2, 0, 1)[None].float() / 255.0
    for name, v in chain:
        if name == "blur":
            x = blur(x, blur_kernel("iso", (v, v)))
        elif name == "noise":
            x = add_noise(x, v, rng)
        else:
            x = jpeg(x, int(v))
        x = quantize(x)
    out = tensor_to_uint8(x)
    return out[:, :, 0] if gray else out
