"""High-level entry points shared by the CLI, the web page and video.

Two layers:

* :class:`Upscaler` holds a model choice and the settings (tile, TTA, alpha,
  device) and upscales :class:`~kakudai.data.io.ImageData` (decoded samples +
  alpha + ICC/EXIF) to ImageData. It loads each model scale it needs once.
  The CLI, the web page and video frames all go through it.
* :func:`upscale` is the one-call Python API over it for PIL images, numpy
  arrays and image paths.
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn as nn

from .data.io import DEFAULT_MAX_PIXELS, ImageData, from_pil, read_image, to_pil, write_image
from .infer.auto import style_of
from .infer.styles import STYLES
from .infer.tiling import tile_count
from .infer.upscale import super_resolve, tile_multiple, upscale_tile
from .models.calling import single_scale
from .ops.alpha import fill_transparent
from .ops.estimate import is_gray
from .ops.resize import imresize_torch, output_size
from .registry import create_model
from .zoo import MODEL_STYLES, auto_restorers, for_style, is_file, load_model, resolve

__all__ = ["upscale", "denoise", "assess", "Upscaler", "target_size", "model_scales", "ALPHA_MODES"]

ALPHA_MODES = ("model", "bicubic")
ProgressFn = Callable[[int, int], None]


def target_size(h: int, w: int, scale: float | None = None, width: int | None = None,
                height: int | None = None) -> tuple[int, int]:
    """Output (height, width) for an h x w input.

    ``scale``: MATLAB's rule, ceil(side * scale). ``width`` and/or ``height``:
    fit inside that box keeping the aspect ratio (one of them alone fixes that
    side). Exactly one of ``scale`` or width/height must be given.
    """
    if (scale is None) == (width is None and height is None):
        raise ValueError("give either a scale or a width/height to fit")
    if scale is not None:
        return output_size((h, w), scale=float(scale))[0]
    for v in (width, height):
        if v is not None and v < 1:
            raise ValueError(f"width/height must be positive, got {v}")
    sx = width / w if width is not None else math.inf
    sy = height / h if height is not None else math.inf
    if sx <= sy:
        return max(1, round(h * sx)), int(width)  # type: ignore[arg-type]
    return int(height), max(1, round(w * sy))  # type: ignore[arg-type]


def model_scales(model: nn.Module | str | os.PathLike) -> list[float] | None:
    """The scales a model runs at natively, or None when any scale works.

    Bicubic and pre-upsampled models (SRCNN, RED-Net) take any scale; a
    multi-scale KSR file lists its tails; a shipped name lists its files.
    """
    if isinstance(model, nn.Module):
        return model.spec.native_scales()
    name = str(model)
    if is_file(name):
        return model_scales(load_model(name))
    if name.endswith("+shrink"):  # integer model, then bicubic: any scale
        return None
    served = resolve(name, 2, task="upscale").entry
    return (served.present_scales() or None) if served is not None else None


def _served_by_any_scale_model(name: str, scale: float) -> bool:
    """Whether shipped name or alias ``name`` renders ``scale`` with an arbitrary-scale model."""
    served = resolve(name, scale, task="upscale").entry
    return served is not None and served.any_scale


def _pick_scale(target: float, available: Sequence[float] | None) -> float:
    """The native scale to run for an output ``target`` times larger.

    Any-scale models run at the target itself (an integer when it is one). Fixed-scale
    models run at the smallest scale that reaches the target (then shrink with MATLAB
    bicubic), or their largest (then enlarge the rest with bicubic).
    """
    if available is None:
        return float(round(target)) if abs(target - round(target)) < 1e-9 else target
    above = [s for s in sorted(available) if s >= target - 1e-9]
    return above[0] if above else max(available)


class Upscaler:
    """A model and settings, applied to :class:`ImageData` images.

    ``model``: a name (``default``, ``fast``, ``bicubic``, a registered name with
    shipped weights), a ``.safetensors`` path, or a ready ``nn.Module``.
    ``tile``: ``"auto"`` (largest tile within ``tile_budget`` bytes), a core tile
    side in input pixels, or None (whole image). ``alpha``: ``"model"`` upscales
    the alpha plane with the model, ``"bicubic"`` with MATLAB bicubic.
    ``denoise``: ``"auto"`` reads each image's degradation (:func:`kakudai.infer.auto.assess`:
    JPEG quality from the file or its pixels, noise level) and cleans degraded images
    before upscaling, with the restorers and level it chooses
    (:data:`kakudai.zoo.AUTO_RESTORERS`); clean images are upscaled as they are.
    The last reading is :attr:`last_assessment`, the cleaning :attr:`last_cleanup`.
    0-3 (waifu2x's JPEG-noise levels) cleans every image with the JPEG restorer at that
    level (:class:`kakudai.infer.restore.Denoiser`); None = neither.
    ``backend`` (``torch`` or ``onnxruntime``) and ``precision`` (``fp32`` or
    ``bf16``) choose how the network runs (:func:`kakudai.infer.export.with_backend`).
    ``style``: ``"photo"``, ``"illustration"``, ``"manga"`` (gray drawings) or
    ``"auto"`` (each image read by :func:`kakudai.infer.auto.style_of`, after automatic
    cleaning). With an alias (``default``, ``fast``), drawings go to the alias's model
    for their style at the scales it ships (:func:`kakudai.zoo.for_style`), and
    automatic denoising cleans them with :func:`kakudai.zoo.auto_restorers` of their style. The last image's style is
    :attr:`last_style`.
    """

    def __init__(self, model: nn.Module | str | os.PathLike = "default", tile: int | str | None = "auto",
                 tta: bool = False, alpha: str = "model", device: str | torch.device | None = None,
                 tile_budget: float = 1.0e9, denoise: int | str | None = None, backend: str = "torch",
                 precision: str = "fp32", style: str = "photo"):
        if alpha not in ALPHA_MODES:
            raise ValueError(f"alpha must be one of {ALPHA_MODES}, not {alpha!r}")
        if isinstance(tile, str) and tile != "auto":
            tile = int(tile)
        if isinstance(tile, int) and tile < 0:
            raise ValueError(f"tile must be positive, got {tile}")
        self.model, self.tile, self.tta, self.alpha = model, tile, tta, alpha
        self.device = torch.device(device) if device is not None else None
        self.tile_budget = tile_budget
        self.backend, self.precision = backend, precision
        if style not in (*STYLES, "auto"):
            raise ValueError(f"style must be one of {', '.join(STYLES)} or auto, not {style!r}")
        # A drawing model named as such cleans with the restorers of its style.
        self.style = MODEL_STYLES.get(model, style) if isinstance(model, str) else style
        self.last_style: str | None = None
        self.last_model: str | None = None  # the name that served the last image (an alias resolved by style)
        self._models: dict[tuple[Any, float], nn.Module] = {}
        self._scales: list[float] | None | str = "unknown"
        self.denoiser = None
        self.auto = denoise == "auto"
        self.last_assessment = None
        self._restorers: dict[tuple[Any, str], Any] = {}  # by (level, style), loaded when first needed
        self.last_cleanup: str | None = None
        self.last_cleaned: str | None = None  # the restorer kind that cleaned the last image, if any
        if isinstance(denoise, str) and not self.auto:
            raise ValueError(f"denoise must be 0-3, 'auto' or None, not {denoise!r}")
        self._level = denoise
        if denoise is not None and not self.auto:  # loaded now: missing weights fail early
            self.denoiser = self._restorer(denoise, "photo" if self.style == "auto" else self.style)

    def _restorer(self, level: Any, style: str):
        """The cleanup at ``level`` ("auto" or a JPEG level 0-3) with the restorers for images
        of ``style`` (:func:`kakudai.zoo.auto_restorers`; loaded once)."""
        if (level, style) not in self._restorers:
            from .infer.restore import Denoiser
            self._restorers[(level, style)] = Denoiser(
                noise_level=level, models=auto_restorers(style), tile=self.tile, tta=self.tta,
                device=self.device, tile_budget=self.tile_budget)
        return self._restorers[(level, style)]

    # ----------------------------------------------------------------- models
    def native_scales(self) -> list[float] | None:
        if self._scales == "unknown":
            self._scales = model_scales(self.model)
        return self._scales  # type: ignore[return-value]

    def _name_for(self, style: str, scale: float, cleaned: str | None = None) -> "str | nn.Module":
        """What serves images of ``style`` at ``scale`` that a restorer of kind ``cleaned``
        cleaned (or None): the alias's model for them where it ships the scale
        (:func:`kakudai.zoo.for_style`), else ``model`` itself."""
        return for_style(self.model, style, scale, cleaned) if isinstance(self.model, str) else self.model

    def model_for(self, scale: float, style: str = "photo", cleaned: str | None = None) -> nn.Module:
        """The model that runs at native ``scale`` for images of ``style`` cleaned by a
        restorer of kind ``cleaned`` (or None; loaded once, on the device)."""
        name = self._name_for(style, scale, cleaned)
        key = (name if isinstance(name, str) else id(name), scale)
        if key not in self._models:
            if isinstance(name, nn.Module):
                m = single_scale(name, scale)
            else:
                m = load_model(name, scale, task="upscale")
            m = m.eval()
            if self.device is not None:
                m = m.to(self.device)
            if (self.backend, self.precision) != ("torch", "fp32"):
                from .infer.export import with_backend
                m = with_backend(m, scale, self.backend, self.precision)
            self._models[key] = m
        return self._models[key]

    def plan(self, h: int, w: int, scale: float | None = None, width: int | None = None,
             height: int | None = None) -> tuple[float, tuple[int, int]]:
        """(native model scale, output (height, width)) for an h x w input."""
        oh, ow = target_size(h, w, scale, width, height)
        target = max(oh / h, ow / w) if scale is None else float(scale)
        native = self.native_scales()
        if (native is not None and isinstance(self.model, str) and not is_file(self.model)
                and not any(abs(target - s) < 1e-9 for s in native)
                and _served_by_any_scale_model(self.model, target)):
            native = None  # no fixed-scale model has this scale: the arbitrary-scale one renders it
        if native is None and scale is None and output_size((h, w), scale=target)[0] != (oh, ow):
            return (oh / h, ow / w), (oh, ow)  # per-axis scales: exactly the target size
        return _pick_scale(target, native), (oh, ow)

    def tiles_for(self, h: int, w: int, scale: float, style: str = "photo", cleaned: str | None = None) -> int:
        """Number of tiles one plane of an h x w image is cut into (progress totals)."""
        model = self.model_for(scale, style, cleaned)
        t = self._tile_side(model, h, w, scale)
        return 1 if not t else tile_count(h, w, t, scale, tile_multiple(model, scale))

    def _tile_side(self, model: nn.Module, h: int, w: int, scale: float) -> int | None:
        if self.tile != "auto":
            return self.tile or None  # type: ignore[return-value]
        return upscale_tile("auto", model, h, w, scale, self.tta, self.tile_budget)

    # ----------------------------------------------------------------- images
    def __call__(self, img: ImageData, scale: float | None = None, width: int | None = None,
                 height: int | None = None, on_tile: ProgressFn | None = None) -> ImageData:
        """Upscale ``img`` by ``scale`` or to fit ``width``/``height``; metadata carried over.

        Samples keep their type (uint8, uint16, float32 in [0, 1]). ``on_tile(done,
        total)`` counts tiles over the colour and alpha passes.
        """
        style = self.style
        original, img = img, self._cleanup(img, "photo" if style == "auto" else style)
        if style == "auto":
            # Read on the cleaned image (JPEG ringing hides flat fills); a drawing that was
            # cleaned the photo way is cleaned again from the original, the drawing way.
            style = style_of(img.pixels, cleaned=img is not original, gray=is_gray(original.pixels))
            if (style != "photo" and img is not original
                    and auto_restorers(style) != auto_restorers("photo")):
                img = self._cleanup(original, style)
        self.last_style = style
        h, w = img.pixels.shape[:2]
        native, (oh, ow) = self.plan(h, w, scale, width, height)
        model = self.model_for(native, style, self.last_cleaned)
        name = self._name_for(style, native, self.last_cleaned)
        self.last_model = resolve(name, native).name if isinstance(name, str) and not is_file(name) else None
        tile = self._tile_side(model, h, w, native)
        passes = 2 if img.alpha is not None else 1
        per_pass = self.tiles_for(h, w, native, style, self.last_cleaned)
        total = passes * per_pass

        def progress(offset: int) -> ProgressFn | None:
            if on_tile is None:
                return None
            return lambda n, _t: on_tile(offset + n, total)

        colour = img.pixels
        if img.alpha is not None and (img.alpha == 0).any():
            # Hidden colour under transparent pixels would leak into the visible edges.
            colour = fill_transparent(img.pixels, img.alpha)
        pixels = self._plane(model, colour, native, tile, (oh, ow), progress(0), dtype=img.pixels.dtype)
        alpha = None
        if img.alpha is not None:
            amodel = model if self.alpha == "model" else create_model("bicubic", scale=native)
            alpha = self._plane(amodel, img.alpha[:, :, None], native, tile, (oh, ow),
                                progress(per_pass))[:, :, 0]
        return img.with_pixels(pixels, alpha)

    def on_array(self, a: np.ndarray, scale: float) -> np.ndarray:
        """Upscale an array (H, W) or (H, W, 1|2|3|4) of uint8, uint16 or float in [0, 1]
        by ``scale``; the same layout and dtype back (2nd / 4th channel: alpha)."""
        data, back = _array_to_data(np.asarray(a))
        return back(self(data, scale))

    def report(self) -> str | None:
        """What automatic denoising read from the last image and what it did, or None."""
        if self.last_assessment is None:
            return None
        style = f" ({self.last_style})" if self.last_style is not None else ""
        done = self.last_cleanup or "upscaled as it is"
        if self.last_model is not None:
            done += f"; model {self.last_model}"
        return f"{self.last_assessment.describe()}{style} -> {done}"

    def _cleanup(self, img: ImageData, style: str) -> ImageData:
        """Whatever cleaning ``denoise`` asks for, with the restorers for ``style``."""
        self.last_cleaned = None
        if self.auto:
            return self.clean(img, style)
        if self.denoiser is not None:
            cleaner = self._restorer(self._level, style)
            img = cleaner(img)
            self.last_cleaned = cleaner.last_kind
        return img

    def clean(self, img: ImageData, style: str = "photo") -> ImageData:
        """Automatic denoising of one image: assess it, and clean it (noise first, else JPEG
        artifacts at the file's own quality) with the restorers for ``style``
        (:func:`kakudai.zoo.auto_restorers`); a clean image comes back as it is."""
        from .infer.auto import assess
        self.last_assessment = a = assess(img.pixels, img.jpeg_quality)
        self.last_cleanup = self.last_cleaned = None
        if not a.degraded:
            return img
        cleaner = self._restorer("auto", style)
        img = cleaner(img, assessment=a)
        self.last_cleanup = f"cleaned: {cleaner.description}"
        self.last_cleaned = cleaner.last_kind
        return img

    def _plane(self, model: nn.Module, a: np.ndarray, native: float, tile: int | None,
               out_hw: tuple[int, int], on_tile: ProgressFn | None, dtype: Any = None) -> np.ndarray:
        """(h, w, C) samples -> (oh, ow, C) samples of the same dtype (or of ``dtype``:
        float32 [0, 1] in, integer samples out)."""
        if a.dtype not in (np.uint8, np.uint16, np.float32):
            raise ValueError(f"unsupported sample type {a.dtype}")
        out_dtype = {np.dtype(np.uint8): torch.uint8, np.dtype(np.uint16): torch.uint16}.get(np.dtype(dtype or a.dtype))
        with warnings.catch_warnings():  # read-only arrays (from PIL) are fine: never written
            warnings.simplefilter("ignore", UserWarning)
            x = torch.from_numpy(a).permute(2, 0, 1).unsqueeze(0)  # a view; tiles convert to float
        y = super_resolve(model, x, native, tile=tile, tta=self.tta, out_dtype=out_dtype,
                          on_tile=on_tile)
        if tuple(y.shape[-2:]) != tuple(out_hw):
            y = _resize_samples(y, out_hw)
        return np.ascontiguousarray(y[0].permute(1, 2, 0).numpy())


def _resize_samples(y: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
    """MATLAB-bicubic resize of samples (any dtype) to ``out_hw``, same dtype back."""
    dtype = y.dtype
    peak = {torch.uint8: 255.0, torch.uint16: 65535.0}.get(dtype)
    f = y.to(torch.float32) / peak if peak else y
    f = imresize_torch(f, size=out_hw).clamp_(0, 1)
    return (f * peak).round_().to(dtype) if peak else f


# --------------------------------------------------------------------------- one call
def _as_data(image: Any, max_pixels: Any) -> tuple[ImageData, Callable[[ImageData], Any]]:
    """A path, PIL image or array as ImageData, and the function that gives a result back
    as the kind given: a path or PIL image -> PIL image, an array -> array of its layout."""
    from PIL import Image

    if isinstance(image, (str, os.PathLike)):
        return read_image(image, max_pixels=max_pixels), to_pil
    if isinstance(image, Image.Image):
        return from_pil(image), to_pil
    return _array_to_data(np.asarray(image))


def _same_kind(image: Any, process, *, output: Any, format: Any, quality: Any, max_pixels: Any) -> Any:
    """Apply ``process`` (ImageData -> ImageData) and give back the kind given:
    a path -> a PIL image (or the written ``output`` path), PIL -> PIL, array -> array."""
    data, back = _as_data(image, max_pixels)
    result = process(data)
    if output is not None and isinstance(image, (str, os.PathLike)):
        return write_image(output, result, format=format, quality=quality)
    return back(result)


def upscale(image: Any, scale: float | None = 2, model: nn.Module | str | os.PathLike = "default",
            tile: int | str | None = "auto", tta: bool = False, *, width: int | None = None,
            height: int | None = None, alpha: str = "model", device: str | None = None,
            output: str | os.PathLike | None = None, format: str | None = None,
            quality: int | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS,
            on_tile: ProgressFn | None = None, denoise: int | str | None = "auto", backend: str = "torch",
            precision: str = "fp32", style: str = "auto") -> Any:
    """Upscale a PIL image, a numpy array or an image file; returns the same kind.

    * PIL image -> PIL image. Modes: L, LA, RGB, RGBA and 16-bit gray (``I;16``)
      are kept; P becomes RGB(A), CMYK becomes RGB (through its ICC profile).
      ``info['icc_profile']`` and ``info['exif']`` are carried (orientation reset).
    * numpy array (H, W), (H, W, 1|2|3|4) of uint8, uint16 or float in [0, 1]
      (2 and 4 channels: the last one is alpha) -> array of the same layout and dtype.
    * path -> the image read with full fidelity (16-bit, CMYK, EXIF, ICC). With
      ``output`` the result is written there (atomically, format from its
      extension or ``format``, 16-bit kept in PNG/TIFF) and the output Path is
      returned; without it a PIL image is returned (16-bit colour rounded to
      8 bits, which PIL cannot hold).

    ``scale`` (default 2), or ``width``/``height`` to fit a box (then ``scale``
    is ignored and derived). ``model``/``tile``/``tta``/``alpha``/``device``/``backend``/
    ``precision``: see :class:`Upscaler`. ``max_pixels`` guards file inputs against decompression bombs.
    ``denoise``: ``"auto"`` (default) cleans JPEG-compressed or noisy images first, at the
    level read from each (see :class:`Upscaler`; the reading is :func:`assess`); 0-3
    removes JPEG noise first at waifu2x's levels (see :func:`denoise`); None does neither.
    ``style``: ``"auto"`` (default) sends drawings to the illustration model, gray ones
    to the manga model, where one serves the scale; ``"photo"`` / ``"illustration"`` /
    ``"manga"`` decide it (see :class:`Upscaler`).
    """

    if width is not None or height is not None:
        scale = None
    up = Upscaler(model, tile=tile, tta=tta, alpha=alpha, device=device, denoise=denoise,
                  backend=backend, precision=precision, style=style)
    return _same_kind(image, lambda d: up(d, scale, width, height, on_tile=on_tile),
                      output=output, format=format, quality=quality, max_pixels=max_pixels)


def _array_to_data(arr: np.ndarray) -> tuple[ImageData, Callable[[ImageData], np.ndarray]]:
    """An array as ImageData, and the function that turns a result back into that layout."""
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 2, 3, 4)):
        raise ValueError(f"expected an (H, W) or (H, W, 1|2|3|4) array, got shape {arr.shape}")
    dtype = arr.dtype
    if dtype.kind == "f":
        a = arr.astype(np.float32, copy=False)
    elif dtype in (np.uint8, np.uint16):
        a = arr
    else:
        raise ValueError(f"expected uint8, uint16 or float samples, got {dtype}")
    a3 = a[:, :, None] if a.ndim == 2 else a
    has_alpha = a3.shape[2] in (2, 4)
    pixels = np.ascontiguousarray(a3[:, :, :-1] if has_alpha else a3)
    alpha = np.ascontiguousarray(a3[:, :, -1]) if has_alpha else None

    def restore(d: ImageData) -> np.ndarray:
        out = d.pixels if d.alpha is None else np.concatenate([d.pixels, d.alpha[:, :, None]], axis=2)
        if arr.ndim == 2:
            out = out[:, :, 0]
        return out.astype(dtype, copy=False)

    return ImageData(pixels, alpha), restore


def denoise(image: Any, *, noise_level: int | None = None, sigma: float | None = None,
            jpeg: bool | int | None = None, model: nn.Module | str | os.PathLike | None = None,
            tile: int | str | None = "auto", tta: bool = False, device: str | None = None,
            output: str | os.PathLike | None = None, format: str | None = None,
            quality: int | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Any:
    """Remove noise or JPEG artifacts from a PIL image, a numpy array or an image file.

    Exactly one strength: ``noise_level`` 0-3 (waifu2x's meaning: JPEG cleanup
    from light, 0, to strong, 3), ``sigma`` (Gaussian noise std, 0-255 units)
    or ``jpeg`` (True: any quality, blind; an int: the quality it was saved at).
    Same kinds in and out as :func:`upscale` (alpha is kept untouched). ``model``:
    None for the shipped weights, or a ``.safetensors`` path. Raises
    :class:`kakudai.checkpoint.WeightsError` naming the file when weights are missing.
    """

    from .infer.restore import Denoiser

    dn = Denoiser(noise_level=noise_level, sigma=sigma, jpeg=jpeg, model=model, tile=tile, tta=tta,
                  device=device)
    return _same_kind(image, dn, output=output, format=format, quality=quality, max_pixels=max_pixels)


def assess(image: Any, max_pixels: int | None = DEFAULT_MAX_PIXELS):
    """What automatic denoising reads from an image (a path, PIL image or array): its
    JPEG quality (from a JPEG file's tables, else from its pixels), noise and texture
    levels, and whether it counts as degraded (:class:`kakudai.infer.auto.Assessment`)."""
    from .infer.auto import assess as _assess
    data, _ = _as_data(image, max_pixels)
    return _assess(data.pixels, data.jpeg_quality)
