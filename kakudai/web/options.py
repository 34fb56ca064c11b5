"""What the web page may ask for, and the checks on each request.

Everything here is derived from the Python API and the shipped weights, so the
page offers exactly what :class:`kakudai.api.Upscaler` does: models with weights
in the package (plus ``default`` and ``bicubic``, which always work), the
scales each serves, a scale or a target size, noise reduction (automatic or a
level) and the style. A request for anything else is refused here with a 4xx
:class:`ApiError`, before any decoding.
"""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from .. import api
from ..infer.styles import STYLES
from ..zoo import ALIASES, resolve, shipped

__all__ = ["ApiError", "WebConfig", "ModelChoice", "UpscaleRequest", "model_choices", "models_payload",
           "parse_request", "check_image_header", "output_size"]

# waifu2x's noise levels (0 = light JPEG cleanup ... 3 = strong); "none" = off.
DENOISE_LEVELS = (0, 1, 2, 3)
STYLE_CHOICES = ("auto", *STYLES)  # kakudai.api.Upscaler(style=...)
SCALE_PRESETS = (2.0, 3.0, 4.0)
MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "BMP": "image/bmp",
        "GIF": "image/gif", "TIFF": "image/tiff"}


class ApiError(Exception):
    """A request the server refuses: HTTP ``status`` and a one-line ``message``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class WebConfig:
    """Limits that protect the machine. Pixel counts are width * height."""

    max_upload_bytes: int = 32 * 1024 * 1024
    max_pixels: int = 16_000_000          # input, read from the header before decoding
    max_output_pixels: int = 64_000_000   # result (a 16 MP input at x2)
    formats: tuple[str, ...] = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")
    max_running: int = 1                  # upscales at once (each already uses every core)
    max_waiting: int = 4                  # queued behind them; more get 503
    min_scale: float = 1.0
    max_scale: float = 8.0
    tile: int | None = 256                # LR tile size: bounds memory on large images
    result_ttl: float = 600.0             # seconds a finished job's PNG is kept for download
    max_results: int = 8                  # finished jobs kept at most (oldest dropped first)
    png_compress_level: int = 3           # zlib level: 6 (Pillow's default) is slow on big images
    allowed_hosts: tuple[str, ...] | None = None  # Host headers accepted (None: any)
    kept_upscalers: int = 4               # model settings kept loaded between requests (least recent dropped)


@dataclass(frozen=True)
class ModelChoice:
    """A model the page can offer. ``scales``: the ones it was trained for (None: any).

    The API decides what other scales it serves (resampling a trained scale, or a
    clear error); the page only uses ``scales`` as presets."""

    name: str
    label: str
    scales: tuple[float, ...] | None = None
    resolves: dict[str, str] = field(default_factory=dict)  # alias -> model per preset scale


def model_choices() -> list[ModelChoice]:
    """``default`` (and ``fast`` once ksr-fast ships), ``bicubic``, then every shipped
    upscaler (restorers are not offered: the page's denoise option uses them)."""
    upscalers = shipped("upscale")
    out = []
    for alias in ALIASES.values():
        if alias.name != "default" and alias.target not in {e.name for e in upscalers}:
            continue  # "fast" only once its own weights ship; before that it equals default
        res = {f"{s:g}": resolve(alias.name, s).name for s in SCALE_PRESETS}
        shown = ", ".join(dict.fromkeys(res.values()))
        # An alias falls back to implicit or bicubic, so it serves every scale.
        out.append(ModelChoice(alias.name, f"{alias.name} ({shown})", None, res))
    out.append(ModelChoice("bicubic", "bicubic (no network)", None))
    for e in upscalers:
        if e.scales:
            tag = "/".join(f"x{s:g}" for s in e.present_scales())
            out.append(ModelChoice(e.name, f"{e.name} ({tag})", tuple(e.present_scales())))
        else:  # a scale-free file: an arbitrary-scale model such as implicit
            out.append(ModelChoice(e.name, f"{e.name} (any scale)", None))
    return out


def models_payload(cfg: WebConfig, choices: list[ModelChoice]) -> dict[str, Any]:
    """The body of ``GET /api/models``: everything the page needs to build its form."""
    from .. import __version__

    return {
        "version": __version__,
        "default_model": "default",
        "models": [{**asdict(c), "scales": list(c.scales) if c.scales else None,
                    "any_scale": c.scales is None} for c in choices],
        "scale": {"min": cfg.min_scale, "max": cfg.max_scale, "default": 2.0,
                  "presets": list(SCALE_PRESETS)},
        "denoise": {"levels": list(DENOISE_LEVELS)},
        "limits": {"max_upload_bytes": cfg.max_upload_bytes, "max_pixels": cfg.max_pixels,
                   "max_output_pixels": cfg.max_output_pixels, "formats": list(cfg.formats),
                   "accept": ",".join(MIME[f] for f in cfg.formats if f in MIME)},
    }


@dataclass(frozen=True)
class UpscaleRequest:
    """A validated request: exactly one of ``scale`` and ``size`` is set."""

    model: str
    scale: float | None = None
    size: tuple[int | None, int | None] | None = None  # target (width, height); one may be None
    denoise: int | str | None = "auto"  # "auto": as the CLI's default; None: no noise reduction
    style: str = "auto"  # photo / illustration / manga / auto: as the CLI's --style

    def upscaler_key(self) -> tuple[str, int | str | None, str]:
        """What the :class:`kakudai.api.Upscaler` serving this request is built from
        (requests with the same key share one, and its loaded models)."""
        return self.model, self.denoise, self.style

    def size_kwargs(self) -> dict[str, Any]:
        """``scale`` or ``width``/``height``, as :class:`kakudai.api.Upscaler` is called."""
        if self.size is not None:
            return {"scale": None, "width": self.size[0], "height": self.size[1]}
        return {"scale": self.scale, "width": None, "height": None}


def _field(form: Mapping[str, Any], name: str) -> str:
    v = form.get(name)
    if v is None:
        return ""
    if not isinstance(v, str):
        raise ApiError(400, f"field {name!r} must be text, not a file")
    return v.strip()


def _positive_int(text: str, name: str) -> int | None:
    if not text:
        return None
    try:
        v = int(text)
    except ValueError:
        raise ApiError(400, f"{name} must be a whole number of pixels, got {text[:20]!r}") from None
    if v < 1:
        raise ApiError(400, f"{name} must be at least 1, got {v}")
    return v


def parse_request(form: Mapping[str, Any], cfg: WebConfig, choices: list[ModelChoice]) -> UpscaleRequest:
    """Validate the text fields ``model``, ``scale``, ``width``, ``height``, ``denoise``, ``style``."""
    model = _field(form, "model") or "default"
    by_name = {c.name: c for c in choices}
    if model not in by_name:  # also keeps file-system paths out of load_model
        raise ApiError(400, f"unknown model {model[:40]!r}; available: {', '.join(by_name)}")

    denoise_text = _field(form, "denoise").lower()
    denoise: int | str | None = "auto"
    if denoise_text in ("none", "off", "-1"):
        denoise = None
    elif denoise_text not in ("", "auto"):
        try:
            denoise = int(denoise_text)
        except ValueError:
            denoise = -1
        if denoise not in DENOISE_LEVELS:
            raise ApiError(400, f"denoise must be auto, none or 0-3, got {denoise_text[:20]!r}")

    style = _field(form, "style").lower() or "auto"
    if style not in STYLE_CHOICES:
        raise ApiError(400, f"style must be one of {', '.join(STYLE_CHOICES)}, got {style[:20]!r}")

    width, height = _positive_int(_field(form, "width"), "width"), _positive_int(_field(form, "height"), "height")
    scale_text = _field(form, "scale")
    if width is not None or height is not None:
        if scale_text:
            raise ApiError(400, "give either scale or a target width/height, not both")
        return UpscaleRequest(model, size=(width, height), denoise=denoise, style=style)

    try:
        scale = float(scale_text or "2")
    except ValueError:
        raise ApiError(400, f"scale must be a number, got {scale_text[:20]!r}") from None
    if not math.isfinite(scale) or not cfg.min_scale <= scale <= cfg.max_scale:
        raise ApiError(400, f"scale must be between {cfg.min_scale:g} and {cfg.max_scale:g}, got {scale_text[:20]}")
    return UpscaleRequest(model, scale=scale, denoise=denoise, style=style)


def check_image_header(data: bytes, cfg: WebConfig) -> tuple[str, int, int]:
    """(format, width, height) from the header only; refuses what the server will not decode.

    Pillow's ``open`` parses the header and leaves the pixel data undecoded, so
    a small file that claims a huge size costs nothing here.
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ApiError(400, "the uploaded file is empty")
    if len(data) > cfg.max_upload_bytes:
        raise ApiError(413, f"the upload is {len(data)} bytes; the limit is {cfg.max_upload_bytes}")
    try:
        with Image.open(io.BytesIO(data), formats=list(cfg.formats)) as im:
            fmt, (w, h) = im.format or "?", im.size
    except Image.DecompressionBombError as e:
        raise ApiError(413, f"image too large ({e})") from None
    except UnidentifiedImageError:
        raise ApiError(415, "not an image in an accepted format (" + ", ".join(cfg.formats) + ")") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ApiError(400, f"cannot read the image header ({e})") from None
    if w < 1 or h < 1:
        raise ApiError(400, f"the image has no pixels ({w}x{h})")
    if w * h > cfg.max_pixels:
        raise ApiError(413, f"the image is {w}x{h} = {w * h} pixels; the limit is {cfg.max_pixels}")
    return fmt, w, h


def output_size(width: int, height: int, req: UpscaleRequest) -> tuple[int, int]:
    """The result's (width, height), by the API's own rule (:func:`kakudai.api.target_size`),
    for the output-pixel limit."""
    try:
        oh, ow = api.target_size(height, width, **req.size_kwargs())
    except ValueError as e:
        raise ApiError(400, str(e)) from None
    return int(ow), int(oh)
