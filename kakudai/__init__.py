"""kakudai: deep-learning image super-resolution that runs well on a CPU.

Public API::

    kakudai.upscale(image, scale=2, model="default")   # PIL / numpy / path
    kakudai.denoise(image, noise_level=1)              # or sigma=25, jpeg=True
    kakudai.assess(image)                               # JPEG quality and noise it shows
    kakudai.load_model("ksr", scale=3)                  # shipped name (kakudai.zoo) or .safetensors
    kakudai.list_models()                               # registered architectures
    kakudai.imresize(array, scale=1/3)                  # MATLAB-compatible bicubic
    kakudai.psnr(sr, hr, border=3), kakudai.ssim(...)   # published-table protocol
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["upscale", "denoise", "assess", "load_model", "save_model", "list_models", "create_model", "imresize",
           "psnr", "ssim", "__version__"]

# Where each public name lives. They are imported on first use, so that the command line
# answers --help and --version without loading torch (a second or more).
_PUBLIC = {"upscale": "api", "denoise": "api", "assess": "api", "load_model": "zoo",
           "save_model": "checkpoint", "psnr": "ops.metrics", "ssim": "ops.metrics", "imresize": "ops.resize",
           "create_model": "registry", "list_models": "registry"}

if TYPE_CHECKING:
    from .api import assess, denoise, upscale
    from .checkpoint import save_model
    from .zoo import load_model
    from .ops.metrics import psnr, ssim
    from .ops.resize import imresize
    from .registry import create_model, list_models


def __getattr__(name: str) -> Any:
    """A public name (or a submodule, as ``kakudai.checkpoint``), imported on first use."""
    if name in _PUBLIC:
        value = getattr(importlib.import_module(f"{__name__}.{_PUBLIC[name]}"), name)
        globals()[name] = value
        return value
    if not name.startswith("__"):
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
