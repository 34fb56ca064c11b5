"""kakudai: deep-learning image super-resolution that runs well on a CPU.

Public API::

    kakudai.upscale(image, scale=2, model="default")   # PIL / numpy / path
    kakudai.denoise(image, noise_level=1)              # or sigma=25, jpeg=True
    kakudai.assess(image)                               # JPEG quality and noise it shows
    kakudai.load_model("ksr", scale=3)                  # shipped name or .safetensors
    kakudai.list_models()                               # registered architectures
    kakudai.imresize(array, scale=1/3)                  # MATLAB-compatible bicubic
    kakudai.psnr(sr, hr, border=3), kakudai.ssim(...)   # published-table protocol
"""

from .api import assess, denoise, upscale
from .checkpoint import load_model, save_model
from .ops.metrics import psnr, ssim
from .ops.resize import imresize
from .registry import create_model, list_models

__version__ = "0.1.0"

__all__ = ["upscale", "denoise", "assess", "load_model", "save_model", "list_models", "create_model", "imresize",
           "psnr", "ssim", "__version__"]
