"""How a model is called: the one convention inference, training and wrappers share.

A model declares how it wants its input (see :func:`model_forward`): bicubic
pre-upsampled to the output size (``pre_upsampled``), at low resolution with
the scale as an argument (``takes_scale``), or at low resolution for the one
scale it is built for (``scale``).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from ..ops.resize import imresize_torch

__all__ = ["model_forward", "scale_arg"]


def scale_arg(scale) -> float | tuple[float, float]:
    """A scale as imresize takes it: a float, or a per-axis (s_h, s_w) pair (``--size``)."""
    return (float(scale[0]), float(scale[1])) if isinstance(scale, (tuple, list)) else float(scale)


def model_forward(model: nn.Module, x: torch.Tensor, scale: float,
                  net: Callable[..., torch.Tensor] | None = None) -> torch.Tensor:
    """Run the bare network at ``scale`` (bicubic pre-upsampling if it needs it).

    ``x``: (B, C, h, w) float. ``net``: what runs the network when it is not
    ``model`` itself (the trainer's distributed or mixed-precision call); it is
    called as ``model`` would be, and ``model`` is only read for its declarations.
    The pre-upsampling always runs here, in the input's precision.
    """
    run = model if net is None else net
    if getattr(model, "pre_upsampled", False):
        x = imresize_torch(x, scale=scale_arg(scale))
        return run(x)
    if getattr(model, "takes_scale", False):
        return run(x, scale=scale)
    if getattr(model, "scale", scale) != scale:
        raise ValueError(f"model is for x{model.scale}, not x{scale}")
    return run(x)
