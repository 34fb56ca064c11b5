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
from .data.io import uint8_to_tensor as to_tensor
from .infer.upscale import super_resolve
from .ops.metrics import psnr, ssim

__all__ = ["evaluate_folder", "after_cleaning", "to_tensor", "from_tensor", "evaluate_denoise", "evaluate_jpeg",
           "evaluate_restoration"]


def from_tensor(t: torch.Tensor) -> np.ndarray:
    """uint8 (1, C, H, W) tensor -> (H, W) or (H, W, C) array."""
    a = t[0].permute(1, 2, 0).cpu().numpy()
    return a[:, :, 0] if a.shape[2] == 1 else a


def degraded_lr(name: str, lr: np.ndarray, scale: float, spec: str | None) -> np.ndarray:
    """The benchmark LR of image ``name`` after the fixed degradation chain ``spec``
    (e.g. ``"jpeg:75"``, ``"blur:0.8,noise:5,jpeg:80"``; see
    :func:`kakudai.data.pipeline.parse_spec`), uint8 in and out. The noise is seeded
    by the image name, scale and spec, so every run (and every compared program)
    sees the same input. ``spec`` None or empty returns ``lr`` itself."""
    if not spec:
        return lr
    import zlib
    from .data.pipeline import apply_spec, parse_spec
    seed = zlib.crc32(f"{name}|{float(scale)!r}|{spec}".encode())
    return apply_spec(lr, parse_spec(spec), np.random.default_rng(seed))


def evaluate_folder(model: nn.Module | Callable[[np.ndarray], np.ndarray], folder: str | os.PathLike,
                    scale: float, *, tile: int | None = None, tta: bool = False, channel: str = "y",
                    border: int | None = None, with_ssim: bool = True, degrade: str | None = None,
                    on_image: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Score ``model`` on every image of ``folder`` at ``scale``.

    ``model``: a network (run through :func:`super_resolve`), or any function from a
    uint8 LR array to the uint8 SR array (e.g. the automatic pipeline of
    :class:`kakudai.api.Upscaler`). ``degrade``: a fixed chain applied to the LR
    after the bicubic shrink (:func:`degraded_lr`).
    Returns {"name", "n", "psnr", "ssim", "images": [{"name", "psnr", "ssim"}]}
    with means over images (the tables' convention).
    """
    items = benchmark_set(folder, scale)
    shave = math.ceil(scale) if border is None else border
    rows = []
    for i, it in enumerate(items, start=1):
        lr = degraded_lr(it.name, it.lr, scale, degrade)
        if isinstance(model, nn.Module):
            sr = from_tensor(super_resolve(model, to_tensor(lr), scale, tile=tile, tta=tta,
                                           out_dtype=torch.uint8))
        else:
            sr = model(lr)
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


def after_cleaning(model: nn.Module, cleaner: nn.Module | None, spec: str | None,
                   scale: float) -> nn.Module | Callable[[np.ndarray], np.ndarray]:
    """What scores inputs degraded by ``spec`` the way the automatic route serves a JPEG:
    the JPEG restorer ``cleaner`` at the quality of the spec's last ``jpeg:Q`` step,
    rounded to 8 bits, then ``model`` at ``scale``. ``model`` itself when there is no
    cleaner or no JPEG step. For :func:`evaluate_folder`."""
    from .data.pipeline import parse_spec
    from .infer.restore import level_value, restore_array

    qualities = [v for op, v in parse_spec(spec) if op == "jpeg"] if spec else []
    if cleaner is None or not qualities:
        return model
    level = level_value("jpeg", quality=qualities[-1])

    def run(lr: np.ndarray) -> np.ndarray:
        cleaned = restore_array(lr, cleaner, level)
        return from_tensor(super_resolve(model, to_tensor(cleaned), scale, out_dtype=torch.uint8))
    return run


# ----------------------------------------------------------------- restoration
# Denoising and JPEG-artifact protocols (the DnCNN / FFDNet / ARCNN tables).
# ``model=None`` scores the degraded input itself.

def _restoration_images(folder: str | os.PathLike) -> list[tuple[str, np.ndarray]]:
    """(name, uint8 (H, W) gray or (H, W, 3) RGB) for every image of ``folder``, by name."""
    from .data.datasets import list_images
    from .data.io import read_image_uint8
    paths = list_images(folder)
    if not paths:
        raise FileNotFoundError(f"{folder}: no images found")
    return [(p.name, read_image_uint8(p)) for p in paths]


def _restore_to_uint8(model: nn.Module, degraded: np.ndarray, level: float | None,
                      tile: int | None, tta: bool) -> np.ndarray:
    """Run a restoration model on a float (H, W[, 3]) [0, 1] array; uint8 out, as saved."""
    from .infer.restore import restore
    a = degraded[:, :, None] if degraded.ndim == 2 else degraded
    x = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1), dtype=np.float32))[None]
    return from_tensor(restore(model, x, level, tile=tile, tta=tta, out_dtype=torch.uint8))


def _summarise(folder: str | os.PathLike, rows: list[dict[str, Any]], with_ssim: bool,
               **info: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": os.path.basename(os.path.normpath(str(folder))), "n": len(rows),
                           "psnr": float(np.mean([r["psnr"] for r in rows]))}
    if with_ssim:
        out["ssim"] = float(np.mean([r["ssim"] for r in rows]))
    out.update(info)
    out["images"] = rows
    return out


def _score_restoration(model: nn.Module | None, folder: str | os.PathLike,
                       degrade: Callable[[int, np.ndarray], np.ndarray], level: float, channel: str,
                       tile: int | None, tta: bool, with_ssim: bool,
                       on_image: Callable[[int, int], None] | None) -> list[dict[str, Any]]:
    """Per-image rows for a restoration protocol: ``degrade(i, clean)`` gives the
    input (uint8, or float in [0, 1] unclipped); ``model=None`` scores it as is,
    else the model's output rounded to uint8. No border is shaved."""
    items = _restoration_images(folder)
    rows = []
    for i, (name, clean) in enumerate(items):
        bad = degrade(i, clean)
        if model is not None:
            x = bad.astype(np.float32) / 255.0 if bad.dtype == np.uint8 else bad
            bad = _restore_to_uint8(model, x, level, tile, tta)
        row: dict[str, Any] = {"name": name, "psnr": psnr(bad, clean, border=0, channel=channel)}
        if with_ssim:
            row["ssim"] = ssim(bad, clean, border=0, channel=channel)
        rows.append(row)
        if on_image:
            on_image(i + 1, len(items))
    return rows


def evaluate_denoise(model: nn.Module | None, folder: str | os.PathLike, sigma: float, *,
                     seed: int = 0, assume_sigma: float | None = None, tile: int | None = None,
                     tta: bool = False, with_ssim: bool = True, clip: bool = False,
                     on_image: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Gaussian denoising PSNR on every image of ``folder`` (the DnCNN/FFDNet protocol).

    ``clip``: the noisy image is clipped to 0-255 and rounded, as a saved noisy file
    is (the same noise draws; not the published protocol).

    Image i (sorted by name), uint8 clean c: noisy = c + sigma * N(0, 1) in 0-255
    float64 units, the normal samples from ``numpy.random.default_rng((seed, i))``
    with the image's shape (gray images get gray noise), NOT clipped or
    rounded. The model's output is rounded to uint8; ``model=None`` scores the
    float noisy image itself. PSNR (peak 255, no border) on all RGB channels,
    gray images on their values. A level-map model is told ``assume_sigma``
    (default: ``sigma``). Returns {"name", "n", "psnr", "ssim", "task",
    "sigma", "images": [...]}.
    """
    from .data.degrade import noise_level
    level = noise_level(sigma if assume_sigma is None else assume_sigma)
    def degrade(i: int, clean: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng((seed, i))
        noisy = clean.astype(np.float64) + rng.standard_normal(clean.shape) * float(sigma)
        return (np.clip(np.rint(noisy), 0, 255) if clip else noisy) / 255.0

    rows = _score_restoration(model, folder, degrade, level, "rgb", tile, tta, with_ssim, on_image)
    return _summarise(folder, rows, with_ssim, task="denoise", sigma=float(sigma), seed=seed, clip=clip)


def evaluate_jpeg(model: nn.Module | None, folder: str | os.PathLike, quality: int, *,
                  assume_quality: int | None = None, tile: int | None = None, tta: bool = False,
                  with_ssim: bool = True,
                  on_image: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """JPEG artifact removal PSNR on every image of ``folder`` (the ARCNN/DnCNN-3 protocol).

    Each uint8 image is encoded by Pillow's libjpeg at ``quality`` (gray images
    as one channel; colour with Pillow's default 4:2:0) and decoded. The
    model's output is rounded to uint8; ``model=None`` scores the decoded JPEG.
    PSNR (peak 255, no border) on the gray values, or on Y (BT.601, 16-235)
    for colour images. A level-map model is told ``assume_quality`` (default:
    ``quality``). Returns {"name", "n", "psnr", "ssim", "task", "quality", "images"}.
    """
    from .data.degrade import jpeg_level, jpeg_roundtrip
    level = jpeg_level(quality if assume_quality is None else assume_quality)
    rows = _score_restoration(model, folder, lambda i, clean: jpeg_roundtrip(clean, int(quality)),
                              level, "y", tile, tta, with_ssim, on_image)
    return _summarise(folder, rows, with_ssim, task="jpeg", quality=int(quality))


# Validation points for training runs: a middle noise level and a hard JPEG quality.
VAL_SIGMA = 25.0
VAL_QUALITY = 20


def evaluate_restoration(net: nn.Module, folder: str | os.PathLike, data_cfg: Any) -> dict[str, Any]:
    """Validation of a task=restore training run on ``folder`` (PSNR only).

    Noise models are scored at sigma 25 and JPEG models at quality 20, each
    clamped into the config's training range (noise+JPEG configs: at the noise).
    """
    from .data.degrade import restore_kind
    kind = restore_kind(data_cfg)
    if "noise" in kind:
        lo, hi = (float(v) for v in data_cfg.noise_sigma)
        return evaluate_denoise(net, folder, min(max(VAL_SIGMA, lo), hi), with_ssim=False)
    lo, hi = (int(v) for v in data_cfg.jpeg_quality)
    return evaluate_jpeg(net, folder, min(max(VAL_QUALITY, lo), hi), with_ssim=False)
