"""How a model is called: the one convention inference, training, wrappers and export share.

Everything here reads the model's :class:`~kakudai.models.spec.ModelSpec` (``model.spec``):
bicubic pre-upsampling to the output size (``pre_upsampled``), the scale as an argument
(``takes_scale``) or a check that the model serves it, the level plane of a restorer
(``level_map``), and which single-scale model or gray companion runs.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from ..ops.resize import imresize_torch

__all__ = ["model_forward", "call_network", "scale_arg", "single_scale", "gray_companion",
           "attach_gray_companion"]


def scale_arg(scale) -> float | tuple[float, float]:
    """A scale as imresize takes it: a float, or a per-axis (s_h, s_w) pair (``--size``)."""
    return (float(scale[0]), float(scale[1])) if isinstance(scale, (tuple, list)) else float(scale)


def call_network(model: nn.Module, x: torch.Tensor, scale,
                 net: Callable[..., torch.Tensor] | None = None) -> torch.Tensor:
    """Run the bare network on ``x`` already in the form it takes (enlarged for a
    pre-upsampled model, level plane included): ``model(x, scale=scale)`` or ``model(x)``.

    ``net``: what runs the network when it is not ``model`` itself (the trainer's
    distributed or mixed-precision call, an export wrapper); it is called as ``model``
    would be, and ``model`` is only read for its spec.
    """
    spec = model.spec
    run = model if net is None else net
    if spec.takes_scale:
        return run(x, scale=scale)
    if not spec.supports(scale):
        raise ValueError(f"model is for x{spec.scale:g}, not x{scale}")
    return run(x)


def model_forward(model: nn.Module, x: torch.Tensor, scale, net: Callable[..., torch.Tensor] | None = None,
                  level: float | None = None) -> torch.Tensor:
    """Run the network at ``scale`` on the image ``x`` (B, C, h, w) float.

    A pre-upsampled model gets ``x`` enlarged by MATLAB bicubic first, always here and in
    the input's precision. ``level``: the strength of a restorer with a level plane, added
    as one constant input plane after the image; without it ``x`` must already hold the
    plane (training batches do). ``net``: as in :func:`call_network`.
    """
    spec = model.spec
    if spec.pre_upsampled:
        x = imresize_torch(x, scale=scale_arg(scale))
    if level is not None:
        if not spec.level_map:
            raise ValueError("this model takes no level (it has no level plane)")
        x = torch.cat([x, torch.full_like(x[:, :1], float(level))], dim=1)
    elif spec.level_map and x.shape[1] != spec.in_channels:
        raise ValueError("this model needs a level (sigma or JPEG quality)")
    return call_network(model, x, scale, net)


def single_scale(model: nn.Module, scale) -> nn.Module:
    """``model`` reduced to the one tail for integer ``scale`` when it carries several
    (``spec.multi_scale``; the registry checks such a model has ``for_scale``), else
    ``model`` itself. The reduced model keeps the file metadata it was loaded with."""
    if not model.spec.multi_scale:
        return model
    meta = model.__dict__.get("weights_meta")
    reduced = model.for_scale(int(scale))
    if meta is not None:
        reduced.weights_meta = meta
    return reduced


def gray_companion(model: nn.Module) -> nn.Module | None:
    """The 1-channel model attached to an RGB restorer for gray images, if any."""
    companion = model._modules.get("gray_companion")
    return companion


def attach_gray_companion(model: nn.Module, gray: nn.Module) -> nn.Module:
    """Attach ``gray`` (a 1-channel model with ``model``'s level plane) to ``model`` as
    the submodule that restores gray images (so it moves with ``model.to(device)``)."""
    if gray.spec.channels != 1 or gray.spec.level_map != model.spec.level_map:
        raise ValueError("a gray companion is a 1-channel model with the same level plane")
    model.gray_companion = gray
    return model
