"""The tensor-level restoration pipeline (denoising, JPEG cleanup) and its levels.

``restore`` runs a same-size restoration model (``REDNet`` with ``scale=1``)
on an RGB or gray batch, handling what the model declares: its channels
(an RGB model on a gray image sees R = G = B and its three outputs are
averaged; a gray model on an RGB image cleans each channel on its own), its
level map (one constant extra input plane, see :mod:`kakudai.data.degrade`),
and its padding multiple (space-to-depth models: tiles are aligned so that
tiled output equals whole-image output). Input values may leave [0, 1]
(a noisy float image is not clipped); the output is clipped.

Shipped restoration weights and the user-facing strengths:

* noise (default ``unet-noise``, gray images to its gray companion
  ``unet-noise-gray``; :mod:`kakudai.zoo` declares the others): Gaussian noise; the
  level is ``sigma`` in 0-255 units.
* jpeg (default ``unet-jpeg``): JPEG artifacts; the level is a JPEG quality
  (lower = stronger).
  ``--noise-level 0..3`` (waifu2x's meaning) maps to a quality through
  :data:`NOISE_LEVEL_QUALITY`.

The models are trained with the level as an upper bound (some patches are
degraded less than their map says, see ``LEVEL_SLACK_PROB``), so a level
stronger than the real degradation is safe, and the strongest trained level
is blind.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from ..checkpoint import load_weights_file
from ..data.degrade import jpeg_level, noise_level
from ..models.calling import attach_gray_companion, gray_companion, model_forward
from ..zoo import DEFAULT_RESTORERS, ZOO, is_file, load_model, restorer_task
from .auto import NOISE_MIN_SIGMA, assess
from .tiling import tiled_apply
from .upscale import (adapt_channels, apply_to_array, bytes_per_input_pixel, model_device, resolve_tile,
                      self_ensemble, tile_multiple)

__all__ = ["restore", "restore_array", "load_restorer", "for_channels", "level_value", "denoise_settings", "Denoiser",
           "NOISE_LEVEL_QUALITY", "BLIND_QUALITY", "MAX_SIGMA"]

# waifu2x's noise levels (JPEG artifacts): 0 = light cleanup of good JPEGs
# (quality ~85-95) ... 3 = strong (quality ~20 and below, or recompressed).
# The value is the lowest quality the level is meant for.
NOISE_LEVEL_QUALITY = {0: 85, 1: 65, 2: 40, 3: 20}
BLIND_QUALITY = 10  # the strongest trained JPEG level: "any quality from 10 up"
MAX_SIGMA = 55.0  # the strongest trained noise level
# Automatic strength: the estimated sigma times this (a level a little above the real
# noise costs little; one below it leaves noise in).
AUTO_MARGIN = 1.1


def for_channels(model: nn.Module, channels: int) -> nn.Module:
    """The network that restores a ``channels``-channel image: gray ones go to the gray companion."""
    companion = gray_companion(model)
    return companion if channels == 1 and companion is not None else model


def load_restorer(kind: str, model: "str | nn.Module | None" = None) -> nn.Module:
    """The restoration model for ``kind`` (``noise`` / ``jpeg``): the kind's default
    (:data:`kakudai.zoo.DEFAULT_RESTORERS`), a shipped restorer of that kind by name
    (e.g. ``rednet-noise``), a .safetensors path, or a module.

    A shipped model carries its gray companion (:class:`kakudai.zoo.Shipped`), when
    that ships, as the submodule ``gray_companion`` (:func:`restore` sends gray
    images to it); a file or module is taken alone. Raises
    :class:`kakudai.checkpoint.WeightsError` naming the missing file when the weights
    are not there (e.g. before the models are trained), and
    :class:`kakudai.zoo.TaskMismatch` for a shipped model of another task.
    """
    task = restorer_task(kind)
    if isinstance(model, nn.Module):
        return model.eval()
    name = DEFAULT_RESTORERS[kind] if model in (None, "default") else str(model)
    if is_file(name):
        return load_weights_file(name)
    net = load_model(name, task=task)
    gray = ZOO[name].gray
    if gray is not None and ZOO[gray].file() is not None:
        attach_gray_companion(net, load_model(gray, task=task))
    return net


def level_value(kind: str, *, sigma: float | None = None, quality: float | None = None) -> float:
    """The level-map value for noise of ``sigma`` or JPEG at ``quality``."""
    if kind == "noise":
        if sigma is None or not 0 <= sigma <= 255:
            raise ValueError(f"noise level needs a sigma in 0-255, got {sigma}")
        return noise_level(sigma)
    if kind == "jpeg":
        if quality is None or not 1 <= quality <= 100:
            raise ValueError(f"JPEG level needs a quality in 1-100, got {quality}")
        return jpeg_level(quality)
    raise ValueError(f"unknown restoration kind {kind!r}")


def _network(model: nn.Module, x: torch.Tensor, level: float | None) -> torch.Tensor:
    # A model without a level plane cleans at its one strength: the level is not for it.
    return model_forward(model, x, 1, level=level if model.spec.level_map else None)


def _restore_untiled(model: nn.Module, x: torch.Tensor, level: float | None, tta: bool) -> torch.Tensor:
    def run(t: torch.Tensor) -> torch.Tensor:
        return _network(model, t, level)

    return adapt_channels(partial(self_ensemble, run) if tta else run, x, model.spec.channels)


@torch.inference_mode()
def restore(model: nn.Module, x: torch.Tensor, level: float | None = None,
            tile: int | str | None = None, tta: bool = False, out_dtype: torch.dtype | None = None,
            on_tile: Callable[[int, int], None] | None = None,
            tile_budget: float = 1.0e9) -> torch.Tensor:
    """Restore a batch (B, C, H, W), C = 1 (gray) or 3 (RGB); same size out.

    ``x``: float (values may leave [0, 1], e.g. unclipped noise) or uint8 /
    uint16 samples, converted to float tile by tile. ``level``: the level-map
    value in [0, 1] (see :func:`level_value`) for models that take one.
    ``tile``: core tile side in pixels, "auto" (fits ``tile_budget`` bytes) or
    None (whole image). Returns float clipped to [0, 1], or ``out_dtype``
    samples quantised tile by tile. Tiled output equals whole-image output.
    """
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"expected (B, 1|3, H, W), got {tuple(x.shape)}")
    model = for_channels(model, x.shape[1]).eval()
    device = model_device(model)
    h, w = x.shape[-2:]
    radius = model.spec.receptive_radius
    tile = resolve_tile(tile, h, w, bytes_per_input_pixel(model, 1, tta, output_maps=6), tile_budget, radius)

    def fn(t: torch.Tensor) -> torch.Tensor:
        return _restore_untiled(model, t.to(device), level, tta).clamp_(0, 1)

    return tiled_apply(fn, x, 1, tile, overlap=radius, out_dtype=out_dtype, on_tile=on_tile,
                       multiple=tile_multiple(model, 1))


def restore_array(arr: np.ndarray, model: nn.Module, level: float | None = None,
                  tile: int | str | None = None, tta: bool = False) -> np.ndarray:
    """Restore an image array: uint8 / uint16 / float (H, W) or (H, W, 3); same dtype out.

    Float arrays are taken as [0, 1] and may leave it (unclipped noise); the
    result is clipped to [0, 1].
    """
    return apply_to_array(arr, lambda t, dt: restore(model, t, level, tile=tile, tta=tta, out_dtype=dt))


def denoise_settings(noise_level: int | None = None, sigma: float | None = None,
                     jpeg: bool | int | None = None) -> tuple[str, float, str]:
    """(kind, level-map value, description) from exactly one user-facing strength.

    ``noise_level`` 0-3: JPEG cleanup of waifu2x's strength (see
    :data:`NOISE_LEVEL_QUALITY`). ``sigma``: Gaussian noise of that std (0-255
    units). ``jpeg``: True = JPEG cleanup of unknown quality (blind: the
    strongest trained level), or an int = the JPEG quality the image was saved at.
    """
    given = [v is not None and v is not False for v in (noise_level, sigma, jpeg)]
    if sum(given) != 1:
        raise ValueError("give exactly one of noise_level (0-3), sigma or jpeg")
    if noise_level is not None:
        if noise_level not in NOISE_LEVEL_QUALITY:
            raise ValueError(f"noise level must be 0, 1, 2 or 3, got {noise_level}")
        q = NOISE_LEVEL_QUALITY[int(noise_level)]
        return "jpeg", level_value("jpeg", quality=q), f"noise level {noise_level} (JPEG quality {q} and up)"
    if sigma is not None:
        if not 0 <= float(sigma) <= MAX_SIGMA:
            raise ValueError(f"sigma must be in 0-{MAX_SIGMA:g} (the trained range), got {sigma}")
        return "noise", level_value("noise", sigma=float(sigma)), f"Gaussian noise sigma {float(sigma):g}"
    if jpeg is True:
        return "jpeg", level_value("jpeg", quality=BLIND_QUALITY), "JPEG, any quality (blind)"
    q = int(jpeg)  # type: ignore[arg-type]
    if not BLIND_QUALITY <= q <= 100:
        raise ValueError(f"JPEG quality must be in {BLIND_QUALITY}-100 (the trained range), got {q}")
    return "jpeg", level_value("jpeg", quality=q), f"JPEG quality {q}"


class Denoiser:
    """A restoration model and its strength, applied to :class:`~kakudai.data.io.ImageData`.

    Exactly one strength: ``noise_level`` (0-3, waifu2x's JPEG cleanup levels),
    ``sigma`` (Gaussian noise, 0-255 units) or ``jpeg`` (True: blind, or the
    JPEG quality), or ``noise_level="auto"``: each image is assessed
    (:func:`kakudai.infer.auto.assess`) and cleaned by the noise model at the estimated
    sigma or the JPEG model at its quality, or left as it is when clean; ``models``
    then names the shipped restorer per kind (default: each kind's default). ``model``:
    None for the shipped weights of that kind, a ``.safetensors`` path, or a module. Alpha is
    left as it is (it carries no noise or JPEG artifacts of the colour planes). Samples keep
    their dtype.
    """

    def __init__(self, noise_level: "int | str | None" = None, sigma: float | None = None,
                 jpeg: bool | int | None = None, model: "str | nn.Module | None" = None,
                 tile: int | str | None = "auto", tta: bool = False,
                 device: "str | torch.device | None" = None, tile_budget: float = 1.0e9,
                 models: "dict[str, str] | None" = None):
        self.tile, self.tta, self.tile_budget, self.device = tile, tta, tile_budget, device
        self.models = dict(models or {})  # automatic strength: a shipped name per kind instead of the default
        self.auto = noise_level == "auto"
        self.last_assessment = None
        self.last_kind: str | None = None  # what cleaned the last image: "noise", "jpeg" or None
        self._nets: dict[str, nn.Module] = {}
        if self.auto:
            if sigma is not None or jpeg is not None or model is not None:
                raise ValueError("noise level auto chooses the model and strength itself")
            self.kind, self.level, self.description = "", None, "auto"
            return
        self.kind, self.level, self.description = denoise_settings(noise_level, sigma, jpeg)
        self.model = self._net(self.kind, model)

    def _net(self, kind: str, model: "str | nn.Module | None" = None) -> nn.Module:
        if kind not in self._nets:
            net = load_restorer(kind, model or self.models.get(kind))
            self._nets[kind] = net.to(self.device) if self.device is not None else net
        return self._nets[kind]

    def settings_for(self, img, assessment=None) -> "tuple[str, float, str] | None":
        """Automatic strength for ImageData ``img``: (kind, level, description), or None
        when it looks clean. Noise wins over JPEG (a noisy JPEG's artifacts are mostly its
        noise); the level is the estimate with AUTO_MARGIN, since the models take their
        level as an upper bound and a level too low leaves noise in."""
        self.last_assessment = a = assessment or assess(img.pixels, img.jpeg_quality)
        if a.noisy:
            # Flagged by the texture reading alone: noise on strong texture, which the
            # white-noise reading misses; the texture level bounds it from above.
            est = a.noise_sigma if a.noise_sigma >= NOISE_MIN_SIGMA else a.texture_sigma
            sigma = min(MAX_SIGMA, AUTO_MARGIN * est)
            return "noise", level_value("noise", sigma=sigma), f"noise at sigma {sigma:.1f} (estimated)"
        if a.jpeg:
            q = max(BLIND_QUALITY, int(a.jpeg_quality))  # type: ignore[arg-type]
            return "jpeg", level_value("jpeg", quality=q), f"JPEG artifacts at quality {q} ({a.jpeg_from})"
        return None

    def __call__(self, img, on_tile: Callable[[int, int], None] | None = None, assessment=None):
        """``img``: ImageData with (H, W, 1|3) uint8 / uint16 / float32 pixels -> same.
        ``assessment``: automatic strength from this reading of ``img`` (else it is read)."""
        if self.auto:
            settings = self.settings_for(img, assessment)
            if settings is None:
                self.description, self.last_kind = "clean: unchanged", None
                return img
            kind, level, self.description = settings
            model = self._net(kind)
        else:
            kind, model, level = self.kind, self.model, self.level
        self.last_kind = kind
        a = img.pixels
        out_dtype = {np.dtype(np.uint8): torch.uint8, np.dtype(np.uint16): torch.uint16}.get(a.dtype)
        if out_dtype is None and a.dtype != np.float32:
            raise ValueError(f"unsupported sample type {a.dtype}")
        if not a.flags.writeable:  # e.g. a view of a PIL image; torch wants writable memory
            a = a.copy()
        x = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).unsqueeze(0)
        y = restore(model, x, level, tile=self.tile, tta=self.tta, out_dtype=out_dtype,
                    on_tile=on_tile, tile_budget=self.tile_budget)
        return img.with_pixels(np.ascontiguousarray(y[0].permute(1, 2, 0).numpy()), img.alpha)
