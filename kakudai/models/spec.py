"""The model contract: what a model declares so that inference and training need no per-family code.

Every model exposes a frozen :class:`ModelSpec` as ``model.spec``. Its values depend on
the constructor's arguments (scale, channels, depth...), so each family builds it at the
end of ``__init__``; wrappers (integer-then-shrink, backends) build theirs from the
wrapped model's. :func:`kakudai.models.registry.create_model` rejects a model without a
valid one. Read a model's contract as ``model.spec.FIELD``, never by probing attributes.

How the fields drive the pipeline (:mod:`kakudai.models.calling` is the one place that
calls a network):

* ``pre_upsampled``: the network takes the image already enlarged by MATLAB bicubic
  (SRCNN, RED-Net, the U-Net); otherwise it takes the low-resolution image.
* ``takes_scale``: forward is called as ``model(x, scale=s)``; otherwise ``model(x)``.
* ``scales``: the integer scales forward serves, or ``"any"`` (continuous-scale and
  pre-upsampled models, bicubic). ``scale`` is the one it was built (trained) for and
  forward's default: the first of ``scales``, or for ``"any"`` the constructor's scale.
* ``channels``: image planes in and out (1 = Y only, 3 = RGB); ``level_map`` adds one
  constant input plane after them holding the strength (restorers).
* ``pad_multiple``: the network works on blocks of this many pixels (of its own
  input); tiles align to it. ``receptive_radius``: pixels of its own input that one
  output pixel depends on, each side (the tile overlap).
* ``feature_floats_per_pixel``: peak live float features per pixel of the network's
  input, which sizes ``tile="auto"`` (:func:`kakudai.infer.upscale.bytes_per_input_pixel`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal, Union

import torch.nn as nn

__all__ = ["ModelSpec", "SpecError", "ANY", "require_spec", "widest_layer_floats"]

ANY = "any"
Scale = Union[float, tuple[float, float]]


class SpecError(ValueError):
    """A model declares no :class:`ModelSpec`, or an invalid or inconsistent one."""


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def _whole(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """A model's inference contract (see the module docstring for each field's meaning)."""

    scale: Scale
    scales: tuple[int, ...] | Literal["any"]
    channels: int
    receptive_radius: int
    feature_floats_per_pixel: float
    pre_upsampled: bool = False
    takes_scale: bool = False
    level_map: bool = False
    pad_multiple: int = 1

    def __post_init__(self) -> None:
        # Normalise the forms a constructor may hand over: a list, whole floats (3.0 -> 3).
        if isinstance(self.scales, (list, tuple)):
            norm = tuple(int(s) if isinstance(s, float) and s.is_integer() else s for s in self.scales)
            object.__setattr__(self, "scales", norm)
        if isinstance(self.scale, list):
            object.__setattr__(self, "scale", tuple(self.scale))
        self.validate()

    def validate(self) -> None:
        """Raise :class:`SpecError` unless every field is valid and the fields agree."""
        def bad(msg: str) -> SpecError:
            return SpecError(f"invalid model spec: {msg}")

        if self.scales != ANY:
            if not isinstance(self.scales, tuple) or not self.scales:
                raise bad(f"scales must be 'any' or a non-empty tuple of integers, not {self.scales!r}")
            if not all(_whole(s) and s >= 1 for s in self.scales):
                raise bad(f"scales must be positive integers, not {self.scales!r}")
            if len(set(self.scales)) != len(self.scales):
                raise bad(f"scales repeat: {self.scales!r}")
        pair = isinstance(self.scale, tuple)
        if not (_number(self.scale) or (pair and len(self.scale) == 2 and all(map(_number, self.scale)))):
            raise bad(f"scale must be a positive number or an (s_h, s_w) pair, not {self.scale!r}")
        if self.scales != ANY and (pair or self.scale not in self.scales):
            raise bad(f"scale {self.scale!r} is not one of scales {self.scales!r}")
        for name in ("pre_upsampled", "takes_scale", "level_map"):
            if not isinstance(getattr(self, name), bool):
                raise bad(f"{name} must be a bool, not {getattr(self, name)!r}")
        if not _whole(self.channels) or self.channels < 1:
            raise bad(f"channels must be a positive integer, not {self.channels!r}")
        if not _whole(self.pad_multiple) or self.pad_multiple < 1:
            raise bad(f"pad_multiple must be an integer >= 1, not {self.pad_multiple!r}")
        if not _whole(self.receptive_radius) or self.receptive_radius < 0:
            raise bad(f"receptive_radius must be an integer >= 0, not {self.receptive_radius!r}")
        if not _number(self.feature_floats_per_pixel):
            raise bad(f"feature_floats_per_pixel must be a positive number, not {self.feature_floats_per_pixel!r}")
        # How the network is called must be unambiguous (calling.model_forward).
        if self.pre_upsampled and self.takes_scale:
            raise bad("a pre-upsampled network does not take the scale (the bicubic enlargement applies it)")
        if self.pre_upsampled and self.scales != ANY:
            raise bad("a pre-upsampled network serves any scale: scales must be 'any'")
        if not self.pre_upsampled and not self.takes_scale and self.scales == ANY:
            raise bad("a network that serves any scale at low resolution must take the scale")
        if not self.pre_upsampled and not self.takes_scale and len(self.scales) != 1:
            raise bad(f"a network that does not take the scale serves one scale, not {self.scales!r}")

    # ------------------------------------------------------------- derived
    @property
    def any_scale(self) -> bool:
        """Whether forward serves any scale (continuous-scale, pre-upsampled, bicubic)."""
        return self.scales == ANY

    @property
    def multi_scale(self) -> bool:
        """Several fixed scales in one model (one tail each; ``for_scale`` extracts one)."""
        return self.scales != ANY and len(self.scales) > 1

    @property
    def in_channels(self) -> int:
        """Input planes of the bare network: the image's, plus the level plane."""
        return self.channels + (1 if self.level_map else 0)

    @property
    def out_channels(self) -> int:
        return self.channels

    def native_scales(self) -> list[float] | None:
        """The scales the model runs at natively, or None when any scale works."""
        return None if self.scales == ANY else [float(s) for s in self.scales]

    def supports(self, scale: Scale) -> bool:
        """Whether forward serves ``scale`` (a number, or a per-axis pair for any-scale models)."""
        if self.scales == ANY:
            return True
        return not isinstance(scale, (tuple, list)) and float(scale) in (float(s) for s in self.scales)

    # ----------------------------------------------------------- storage
    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields (an ONNX export stores them to rebuild the pipeline)."""
        d = asdict(self)
        for k in ("scale", "scales"):
            if isinstance(d[k], tuple):
                d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelSpec":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def require_spec(model: nn.Module, what: str = "") -> ModelSpec:
    """``model.spec``, checked: raises :class:`SpecError` naming ``what`` (the architecture)
    when it is missing, not a :class:`ModelSpec`, invalid, or promises what the model lacks."""
    name = what or type(model).__name__
    spec = model.__dict__.get("spec")
    if not isinstance(spec, ModelSpec):
        raise SpecError(f"{name}: a model must set self.spec = ModelSpec(...) in __init__ "
                        f"(found {type(spec).__name__})")
    try:
        spec.validate()
    except SpecError as e:
        raise SpecError(f"{name}: {e}") from None
    if spec.multi_scale and not callable(getattr(model, "for_scale", None)):
        raise SpecError(f"{name}: declares scales {spec.scales} but has no for_scale(scale) to extract one")
    return spec


def widest_layer_floats(model: nn.Module) -> float:
    """Five maps (input, output, residual or skip, slack) of the widest convolution in
    ``model``: the feature estimate of a single-resolution network (3 with no layers)."""
    widths = [max(m.in_channels, m.out_channels) for m in model.modules()
              if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    return 5.0 * max(widths, default=3)
