"""Degradations for restoration: Gaussian noise and JPEG artifacts.

Conventions:

* images are float arrays in [0, 1], channels first: (C, H, W), C = 1 or 3;
  JPEG works on uint8 images (H, W) or (H, W, 3), like a file does.
* ``sigma`` is in 0-255 units (the tables' convention: sigma 25 means a
  standard deviation of 25/255 on a [0, 1] image).
* Noise is added to the float image and NOT clipped: that is the benchmark
  protocol (DnCNN, FFDNet); a noisy image may leave [0, 1].
* JPEG is Pillow's libjpeg with the standard IJG quality scaling (1-100);
  colour images use 4:2:0 chroma subsampling unless told otherwise.
* Randomness comes only from the numpy ``Generator`` passed in, so training
  stays deterministic and resumable.

A model with a level map (``REDNet(level_map=True)``) gets one extra input
channel holding the degradation level in [0, 1]: ``sigma / 255`` for noise,
``(100 - quality) / 100`` for JPEG (see :func:`noise_level`, :func:`jpeg_level`).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import torch
from PIL import Image

__all__ = ["add_gaussian_noise", "gaussian_noise", "jpeg_roundtrip", "double_jpeg",
           "noise_level", "jpeg_level", "to_gray", "degrade_batch", "restore_kind",
           "LEVEL_SLACK_PROB", "CHROMA_420_PROB", "JPEG_MAX_QUALITY"]

# Fraction of level-map patches whose real degradation is weaker than the map
# says (uniform between none and the map): the map then reads as "at most
# this strong", a clean image survives any level, and the top level is blind.
LEVEL_SLACK_PROB = 0.3
# Colour JPEG training patches use 4:2:0 chroma this often, else 4:4:4
# (both are common on the web; 4:2:0 is Pillow's and most cameras' default).
CHROMA_420_PROB = 0.75
# Highest quality drawn for weaker-than-the-map JPEG and the other pass of a double JPEG.
JPEG_MAX_QUALITY = 95

# Pillow's convert("L"): ITU-R 601-2 luma on full-range RGB (what a gray JPEG holds).
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def noise_level(sigma: float) -> float:
    """Level-map value for Gaussian noise of ``sigma`` (0-255 units)."""
    return float(sigma) / 255.0


def jpeg_level(quality: float) -> float:
    """Level-map value for JPEG at ``quality`` (1-100; 100 = no artifacts)."""
    return (100.0 - float(quality)) / 100.0


def to_gray(img: np.ndarray) -> np.ndarray:
    """Full-range luma (C, H, W) float -> (1, H, W), as Pillow's ``convert("L")``."""
    if img.shape[0] == 1:
        return img
    return np.tensordot(_LUMA, img, axes=(0, 0))[None].astype(img.dtype, copy=False)


def gaussian_noise(shape: tuple[int, ...], sigma: float, rng: np.random.Generator,
                   gray: bool = False) -> np.ndarray:
    """Zero-mean noise of std ``sigma/255`` for an image of ``shape`` (C, H, W), float32.

    ``gray``: one noise plane shared by all channels (luminance-only noise).
    """
    c, h, w = shape
    n = rng.standard_normal((1 if gray else c, h, w), dtype=np.float32) * np.float32(sigma / 255.0)
    return np.broadcast_to(n, (c, h, w)) if gray else n


def add_gaussian_noise(img: np.ndarray, sigma: float, rng: np.random.Generator,
                       gray: bool = False, clip: bool = False) -> np.ndarray:
    """``img`` (C, H, W) in [0, 1] plus Gaussian noise of ``sigma`` (0-255 units).

    Not clipped unless ``clip`` (the benchmark protocol adds noise to the float
    image; a saved 8-bit noisy photo would be clipped and rounded).
    """
    out = img + gaussian_noise(img.shape, sigma, rng, gray)
    return np.clip(out, 0.0, 1.0) if clip else out


def jpeg_roundtrip(img: np.ndarray, quality: int, subsampling: str | None = None) -> np.ndarray:
    """Encode uint8 ``img`` (H, W) or (H, W, 3) as JPEG at ``quality`` and decode it.

    ``subsampling``: Pillow's "4:4:4" / "4:2:2" / "4:2:0" for colour, None =
    Pillow's default (4:2:0). Gray images are encoded as one channel.
    """
    if img.dtype != np.uint8:
        raise TypeError(f"JPEG needs a uint8 image, got {img.dtype}")
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"JPEG quality must be in 1-100, got {quality}")
    im = Image.fromarray(img)
    buf = io.BytesIO()
    kw: dict[str, Any] = {"quality": int(quality)}
    if subsampling is not None and im.mode == "RGB":
        kw["subsampling"] = subsampling
    im.save(buf, format="JPEG", **kw)
    buf.seek(0)
    with Image.open(buf) as dec:
        return np.asarray(dec.convert(im.mode)).copy()


def double_jpeg(img: np.ndarray, q1: int, q2: int, shift: tuple[int, int] = (0, 0),
                subsampling: str | None = None) -> np.ndarray:
    """Compress at ``q1``, then again at ``q2`` on an 8x8 grid moved by ``shift`` (dy, dx).

    The shifted pass is what happens when a JPEG is cropped and re-saved: the
    image is edge-padded by dy rows on top and dx columns on the left before
    the second encoding and cropped back after, so its blocks straddle the
    first pass's. Same shape and dtype (uint8) as ``img``.
    """
    dy, dx = int(shift[0]) % 8, int(shift[1]) % 8
    once = jpeg_roundtrip(img, q1, subsampling)
    pad = ((dy, 0), (dx, 0)) + (((0, 0),) if once.ndim == 3 else ())
    moved = np.pad(once, pad, mode="edge")
    twice = jpeg_roundtrip(moved, q2, subsampling)
    return np.ascontiguousarray(twice[dy:, dx:])


def restore_kind(cfg: Any) -> str:
    """Which degradation a DataConfig asks for: "noise", "jpeg" or "noise+jpeg"."""
    noise = float(cfg.noise_sigma[1]) > 0
    jpeg = float(cfg.jpeg_prob) > 0
    if noise and jpeg:
        return "noise+jpeg"
    if noise:
        return "noise"
    if jpeg:
        return "jpeg"
    raise ValueError("task=restore needs data.noise_sigma with a maximum > 0 or data.jpeg_prob > 0")


def quantize_u8(img: np.ndarray) -> np.ndarray:
    """Float image in [0, 1] -> the same clipped to [0, 1] and rounded to 8-bit levels
    (what saving it as an 8-bit file does), still float32."""
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.float32) / np.float32(255.0)


def _to_u8(img: np.ndarray) -> np.ndarray:
    """(C, H, W) float in [0, 1] -> uint8 (H, W) or (H, W, 3), clipped and rounded."""
    a = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
    return a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)


def _from_u8(a: np.ndarray) -> np.ndarray:
    a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
    return a.astype(np.float32) / 255.0


def _degrade_one(clean: np.ndarray, rng: np.random.Generator, cfg: Any, kind: str,
                 level_map: bool) -> tuple[np.ndarray, float]:
    """One patch (C, H, W), C = 1 (gray) or 3 -> (degraded (C, H, W), level-map value)."""
    x = clean
    level = 0.0
    slack = level_map and rng.random() < LEVEL_SLACK_PROB
    if "noise" in kind:
        lo, hi = float(cfg.noise_sigma[0]), float(cfg.noise_sigma[1])
        s_map = float(rng.uniform(lo, hi))
        sigma = float(rng.uniform(0.0, s_map)) if slack else s_map
        x = add_gaussian_noise(x, sigma, rng)
        # The extra draw only when asked, so that earlier runs resume bit-exactly.
        if cfg.noise_clip_prob > 0 and rng.random() < cfg.noise_clip_prob:
            x = quantize_u8(x)
        level = noise_level(s_map)
    if "jpeg" in kind:
        qlo, qhi = int(cfg.jpeg_quality[0]), int(cfg.jpeg_quality[1])
        if not 1 <= qlo <= qhi <= 100:
            raise ValueError(f"data.jpeg_quality must be 1 <= lo <= hi <= 100, got {cfg.jpeg_quality}")
        power = float(getattr(cfg, "jpeg_quality_power", 1.0))
        if power == 1.0:
            q_map = int(rng.integers(qlo, qhi + 1))
        else:  # skewed towards lo (the strong artifacts), every quality still drawn
            q_map = qlo + int((qhi + 1 - qlo) * float(rng.random()) ** power)
        level = jpeg_level(q_map)
        if rng.random() < float(cfg.jpeg_prob):
            top = max(q_map, JPEG_MAX_QUALITY)
            q = int(rng.integers(q_map, top + 1)) if slack else q_map
            sub = None
            if x.shape[0] == 3:
                sub = "4:2:0" if rng.random() < CHROMA_420_PROB else "4:4:4"
            u8 = _to_u8(x)
            if rng.random() < float(cfg.jpeg_double_prob):
                # The stronger pass (q) comes first or second; the other is milder.
                other = int(rng.integers(q, top + 1))
                q1, q2 = (q, other) if rng.random() < 0.5 else (other, q)
                shift = (int(rng.integers(0, 8)), int(rng.integers(0, 8)))
                u8 = double_jpeg(u8, q1, q2, shift, sub)
            else:
                u8 = jpeg_roundtrip(u8, q, sub)
            x = _from_u8(u8)
    return x, level


def degrade_batch(hr: torch.Tensor, rng: np.random.Generator, cfg: Any, channels: int,
                  level_map: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Training pairs for task=restore: (degraded input, clean target).

    ``hr``: float (B, 3, p, p) in [0, 1] (clean RGB patches). ``cfg``: the
    DataConfig (noise_sigma range, noise_gray_prob, jpeg_quality range,
    jpeg_prob, jpeg_double_prob). ``channels``: 1 (the model sees full-range
    gray) or 3. With ``level_map`` the input gets one more channel, the level
    plane. Returns input (B, channels[+1], p, p) and target (B, channels, p, p).

    Per patch: with probability ``noise_gray_prob`` (RGB models) the patch is
    made gray (R = G = B, gray noise, gray JPEG); noise sigma ~ U(noise_sigma);
    JPEG with probability ``jpeg_prob`` at a quality ~ U{jpeg_quality} (skewed to
    low qualities by ``jpeg_quality_power``), twice
    on a shifted grid with probability ``jpeg_double_prob``. Level-map models
    see a weaker real degradation than the map in LEVEL_SLACK_PROB of patches.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    kind = restore_kind(cfg)
    if level_map and kind == "noise+jpeg":
        raise ValueError("a level-map model is trained on one degradation (noise or JPEG), not both")
    src = hr.detach().cpu().numpy().astype(np.float32, copy=False)
    inputs, targets = [], []
    for clean in src:
        gray = channels == 1 or rng.random() < float(cfg.noise_gray_prob)
        if gray:
            # Degrade the one gray plane (gray noise, gray JPEG), then repeat it
            # for RGB models; rounded to 8 bits, as a gray image file is.
            clean = np.rint(to_gray(clean) * 255.0) / 255.0
        x, level = _degrade_one(clean, rng, cfg, kind, level_map)
        if gray and channels == 3:
            x, clean = np.repeat(x, 3, axis=0), np.repeat(clean, 3, axis=0)
        if level_map:
            x = np.concatenate([x, np.full((1,) + x.shape[1:], level, dtype=np.float32)], axis=0)
        inputs.append(np.asarray(x, dtype=np.float32))
        targets.append(np.asarray(clean, dtype=np.float32))
    return torch.from_numpy(np.stack(inputs)), torch.from_numpy(np.stack(targets))
