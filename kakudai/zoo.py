"""The model zoo: every shipped name, its files and task, the aliases, and the one resolver.

An architecture (:mod:`kakudai.registry`) is code; a shipped model is a name bound
to trained weights in ``kakudai/weights``. This module declares each shipped name
once -- its architecture, its task, its files (one per scale, or one scale-free
file), its gray companion -- plus the aliases and the restorers each denoising job
uses by default. :func:`resolve` turns a name into what serves it; the CLI, the
Python API, the web page, ``bench``, ``eval``, ``compare`` and ``kakudai models``
all go through it (and through :func:`load_model`, built on it).

Adding a shipped model is one declaration in :data:`ZOO`, e.g. an RGB multi-scale
KSR shipped at x2 and x4::

    Shipped("art", "ksr", scales=(2, 4)),

after which ``python -m kakudai.ship art WEIGHTS ...`` writes its files and cards.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch.nn as nn

from .checkpoint import WeightsError, for_inference, load_weights_file
from .models.calling import single_scale
from .registry import create_model

__all__ = ["TASKS", "Shipped", "Alias", "Resolved", "TaskMismatch", "ZOO", "ALIASES", "DEFAULT_RESTORERS",
           "AUTO_RESTORERS", "STYLE_RESTORERS", "STYLE_FALLBACK", "WEIGHTS_DIR", "is_file", "entry", "shipped",
           "resolve", "load_model", "restorer_task", "for_style", "auto_restorers", "MODEL_STYLES"]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

# upscale: LR image -> image `scale` times larger; denoise-noise: Gaussian noise of a given
# sigma removed at the same size; denoise-jpeg: JPEG artifacts of a given quality removed.
TASKS = ("upscale", "denoise-noise", "denoise-jpeg")


@dataclass(frozen=True)
class Shipped:
    """A shipped model: ``name`` bound to weights of architecture ``arch``.

    ``scales``: the integer scales it ships a file for (``NAME_xS.safetensors``
    each); empty for one scale-free file ``NAME.safetensors`` (an arbitrary-scale
    model, or a same-size restorer). ``gray``: the shipped 1-channel model that gray
    images go to when this one restores them. ``after_jpeg``: the shipped upscaler
    (this one fine-tuned on what the JPEG restorer leaves) that serves images a JPEG
    restorer has cleaned, at the scales it ships.
    """

    name: str
    arch: str
    task: str = "upscale"
    scales: tuple[int, ...] = ()
    gray: str | None = None
    after_jpeg: str | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"{self.name}: task must be one of {TASKS}, not {self.task!r}")
        if self.scales and self.task != "upscale":
            raise ValueError(f"{self.name}: a restorer ships one scale-free file")

    @property
    def kind(self) -> str | None:
        """The restoration kind, ``noise`` or ``jpeg`` (None for an upscaler)."""
        return self.task.removeprefix("denoise-") if self.task != "upscale" else None

    @property
    def any_scale(self) -> bool:
        """An upscaler with one scale-free file: it renders every scale itself."""
        return self.task == "upscale" and not self.scales

    def path(self, scale: float | None = None) -> Path:
        """Where the file for ``scale`` lives (the scale-free file: ``scale`` ignored)."""
        if not self.scales:
            return WEIGHTS_DIR / f"{self.name}.safetensors"
        if scale is None or isinstance(scale, (tuple, list)) or not float(scale).is_integer():
            raise ValueError(f"{self.name} ships files for x{'/'.join(map(str, self.scales))} only")
        return WEIGHTS_DIR / f"{self.name}_x{int(scale)}.safetensors"

    def paths(self) -> list[Path]:
        """Every file this model ships (present or not)."""
        return [self.path(s) for s in self.scales] if self.scales else [self.path()]

    def file(self, scale: float | None = None) -> Path | None:
        """The present file that serves ``scale`` (any scale for a scale-free model), or None."""
        if self.scales:
            if (scale is None or isinstance(scale, (tuple, list)) or not float(scale).is_integer()
                    or int(scale) not in self.scales):
                return None
        p = self.path(scale)
        return p if p.exists() else None

    def present_scales(self) -> list[float]:
        """The declared scales whose files are present (empty for a scale-free model)."""
        return [float(s) for s in self.scales if self.path(s).exists()]

    def present(self) -> bool:
        """Whether any of its files is in the package."""
        return any(p.exists() for p in self.paths())


@dataclass(frozen=True)
class Alias:
    """A name for the best shipped model at each scale: ``target`` at the scales it
    ships, ``other_scales`` (an arbitrary-scale model) at the rest. ``illustration``:
    the model that serves drawn images instead (``style="illustration"``) at the
    scales it ships; at other scales drawings go the photo way. ``manga``: the same
    for gray drawings (``style="manga"``); at scales it lacks they go the
    illustration way."""

    name: str
    target: str
    other_scales: str
    illustration: str | None = None
    manga: str | None = None

    def for_style(self, style: str) -> str | None:
        """The model this alias sends images of ``style`` to (None: its own target)."""
        return {"illustration": self.illustration, "manga": self.manga}.get(style)


def _declare(*entries: Shipped) -> dict[str, Shipped]:
    out: dict[str, Shipped] = {}
    for e in entries:
        if e.name in out:
            raise ValueError(f"shipped name {e.name!r} declared twice")
        out[e.name] = e
    return out


# Every shipped name. A file in kakudai/weights that no entry names is never loaded by name.
ZOO: dict[str, Shipped] = _declare(
    # Upscalers at fixed scales (Y-channel networks; chroma is MATLAB bicubic).
    Shipped("ksr", "ksr", scales=(2, 3, 4), after_jpeg="ksr-jpeg"),
    Shipped("ksr-fast", "ksr-fast", scales=(2, 3, 4)),
    Shipped("espcn", "espcn", scales=(2, 3, 4)),
    Shipped("srcnn", "srcnn", scales=(3,)),
    # An RGB upscaler for illustrations (the aliases send drawings here), and the same
    # fine-tuned on what the illustration JPEG restorer leaves.
    Shipped("art", "ksr", scales=(2, 4), after_jpeg="art-jpeg"),
    Shipped("art-jpeg", "ksr", scales=(2, 4)),
    # The art model for gray drawings (manga pages with their screentone, ink drawings;
    # the aliases send them here), and its JPEG route.
    Shipped("art-gray", "ksr", scales=(2,), after_jpeg="art-gray-jpeg"),
    Shipped("art-gray-jpeg", "ksr", scales=(2,)),
    # The flagship fine-tuned on what the JPEG restorer leaves: it upscales the photos
    # that automatic or fixed-level JPEG cleaning has cleaned (``after_jpeg`` above).
    Shipped("ksr-jpeg", "ksr", scales=(2, 4)),
    # Upscalers at any scale.
    Shipped("implicit", "implicit"),
    Shipped("implicit-fast", "implicit"),
    # Restorers (same size out; the level of noise or JPEG quality is an input).
    Shipped("unet-noise", "unet", task="denoise-noise", gray="unet-noise-gray"),
    Shipped("unet-noise-gray", "unet", task="denoise-noise"),
    Shipped("unet-noise-fast", "unet", task="denoise-noise"),
    Shipped("rednet-noise", "rednet", task="denoise-noise"),
    Shipped("unet-jpeg", "unet", task="denoise-jpeg"),
    # unet-jpeg trained on together with ksr-jpeg x2 through the route (restore, round,
    # upscale, loss on the HR): it keeps what the upscaler can use. Automatic cleaning of
    # photos uses it; `kakudai denoise` keeps unet-jpeg, the better restorer to view as is.
    Shipped("unet-jpeg-up", "unet", task="denoise-jpeg"),
    Shipped("rednet-jpeg", "rednet", task="denoise-jpeg"),
    Shipped("unet-jpeg-art", "unet", task="denoise-jpeg"),  # for illustrations
    Shipped("unet-jpeg-art-gray", "unet", task="denoise-jpeg"),  # for gray drawings (screentone kept)
)

ALIASES: dict[str, Alias] = {a.name: a for a in (
    Alias("default", "ksr", other_scales="implicit", illustration="art", manga="art-gray"),
    Alias("fast", "ksr-fast", other_scales="implicit-fast", illustration="art", manga="art-gray"),
)}
# The style of the models aliases send drawings to: an upscaler named as one cleans like one.
MODEL_STYLES: dict[str, str] = {name: style for a in ALIASES.values() for style in ("illustration", "manga")
                                if (m := a.for_style(style)) for name in (m, ZOO[m].after_jpeg) if name}
# An alias whose arbitrary-scale model is not shipped falls back to this one, then to bicubic
# (so the tool works before any weights exist).
FALLBACK_ANY_SCALE = "implicit"

# The restorer of each kind that `kakudai denoise` and the Python API use by default.
DEFAULT_RESTORERS = {"noise": "unet-noise", "jpeg": "unet-jpeg"}
# The restorers that clean degraded images before upscaling (automatic denoising).
# Restoring at the input resolution and then upscaling with the flagship measured
# better than one network trained on realistic LR for both jobs at this project's
# training budget (docs/real-inputs.md); the fast U-Net keeps a 640x360 -> 1080p frame
# near the flagship's own time.
AUTO_RESTORERS = {"noise": "unet-noise-fast", "jpeg": "unet-jpeg-up"}


# The same for drawings of each style, where shipped; else those of the next style
# down STYLE_FALLBACK (gray drawings -> drawings -> photos).
STYLE_RESTORERS = {
    "illustration": {"noise": "unet-noise-fast", "jpeg": "unet-jpeg-art"},
    "manga": {"noise": "unet-noise-fast", "jpeg": "unet-jpeg-art-gray"},
}
STYLE_FALLBACK = {"manga": "illustration", "illustration": "photo"}


def for_style(name: str, style: str, scale: "float | tuple[float, float] | None" = None,
              cleaned: str | None = None) -> str:
    """The name that serves images of ``style`` ("photo", "illustration" or "manga") in
    place of ``name`` at ``scale``, when a restorer of kind ``cleaned`` ("jpeg", "noise"
    or None) cleaned them: for drawings, an alias's model for the style where it ships
    the scale (else that of the style's STYLE_FALLBACK); then, for JPEG-cleaned images,
    the ``after_jpeg`` model of the shipped model serving the scale, where that ships
    it; else ``name`` itself."""
    s = 2.0 if scale is None else scale
    alias = ALIASES.get(name)
    while alias is not None and style in STYLE_FALLBACK:
        e = ZOO.get(alias.for_style(style) or "")
        if e is not None and e.file(s) is not None:
            name = e.name
            break
        style = STYLE_FALLBACK[style]
    if cleaned == "jpeg" and (name in ALIASES or name in ZOO):
        e = resolve(name, s).entry
        after = ZOO.get(e.after_jpeg) if e is not None and e.after_jpeg else None
        if after is not None and after.file(s) is not None:
            return after.name
    return name


def auto_restorers(style: str = "photo") -> dict[str, str]:
    """The restorers automatic denoising uses for images of ``style``: for drawings,
    those of :data:`STYLE_RESTORERS` that ship, each kind falling back along
    :data:`STYLE_FALLBACK` where it does not; :data:`AUTO_RESTORERS` for photos."""
    if style not in STYLE_RESTORERS:
        return dict(AUTO_RESTORERS)
    below = auto_restorers(STYLE_FALLBACK[style])
    return {k: (v if (e := ZOO.get(v)) is not None and e.present() else below[k])
            for k, v in STYLE_RESTORERS[style].items()}


class TaskMismatch(WeightsError):
    """A shipped model asked for a job it does not do (e.g. a denoiser for upscaling)."""


def restorer_task(kind: str) -> str:
    """``noise`` / ``jpeg`` -> the task name (``denoise-noise`` / ``denoise-jpeg``)."""
    task = f"denoise-{kind}"
    if task not in TASKS:
        raise ValueError(f"unknown restoration kind {kind!r}; known: noise, jpeg")
    return task


def is_file(spec: "str | os.PathLike") -> bool:
    """Whether a model spec names a weights file rather than a shipped name."""
    p = Path(spec)
    return p.suffix == ".safetensors" or p.exists()


def entry(name: str) -> Shipped | None:
    """The declaration of shipped name ``name`` (aliases not followed), or None."""
    return ZOO.get(name)


def shipped(task: str | None = None) -> list[Shipped]:
    """The declared models with files present in the package (of ``task``, if given)."""
    return [e for e in ZOO.values() if (task is None or e.task == task) and e.present()]


@dataclass(frozen=True)
class Resolved:
    """What serves a name: ``name`` is a shipped name or ``bicubic``; ``path`` its file
    for the scale asked (None for bicubic, or where no file serves that scale)."""

    name: str
    entry: Shipped | None
    path: Path | None


def _scale_text(scale: "float | tuple[float, float]") -> str:
    return "x".join(f"{v:g}" for v in scale) if isinstance(scale, (tuple, list)) else f"{float(scale):g}"


def _describe_shipped(task: str | None) -> str:
    have = []
    for e in shipped(task):
        tag = "any scale" if e.any_scale else ("/".join(f"x{s:g}" for s in e.present_scales()) or e.task)
        have.append(f"{e.name} ({tag})" if e.task == "upscale" or task is None else e.name)
    return ", ".join(have) or "none"


def _role(task: str) -> str:
    return "an upscaler" if task == "upscale" else f"a {task} restorer"


def _task_error(e: Shipped, task: str) -> TaskMismatch:
    if e.task == "upscale":
        how = f"upscale with it by kakudai upscale --model {e.name}"
    else:
        how = (f"clean with it by kakudai denoise --model {e.name}"
               + (" --sigma S" if e.kind == "noise" else " --jpeg [Q]"))
    return TaskMismatch(f"{e.name}: {_role(e.task)}, not {_role(task)} ({how}); "
                        f"shipped for {task}: {_describe_shipped(task)}")


def resolve(name: str, scale: "float | tuple[float, float] | None" = None, task: str | None = None) -> Resolved:
    """The shipped model behind ``name`` at ``scale`` (default x2 for an alias).

    ``name``: an alias (``default``, ``fast``), a shipped name, or ``bicubic``. An
    alias serves ``scale`` with its target when that ships the scale, else with its
    arbitrary-scale model, ``implicit``, or bicubic, the first that is present. A
    shipped name is itself; its ``path`` is None when no present file serves
    ``scale`` (a multi-scale model asked for a scale it lacks). ``task``: the job the
    caller does; a model of another task raises :class:`TaskMismatch`. An unknown
    name raises :class:`~kakudai.checkpoint.WeightsError` listing what ships.
    """
    if name == "bicubic":
        if task not in (None, "upscale"):
            raise TaskMismatch(f"bicubic: an upscaler, not {_role(task)}")
        return Resolved("bicubic", None, None)
    alias = ALIASES.get(name)
    if alias is not None:
        s = 2.0 if scale is None else scale
        target = ZOO[alias.target]
        if task not in (None, "upscale"):
            raise _task_error(target, task)
        if target.file(s) is not None:
            return Resolved(target.name, target, target.file(s))
        for other in dict.fromkeys((alias.other_scales, FALLBACK_ANY_SCALE)):
            if ZOO[other].file() is not None:
                return Resolved(other, ZOO[other], ZOO[other].file())
        return Resolved("bicubic", None, None)
    e = ZOO.get(name)
    if e is None:
        raise WeightsError(f"no shipped model named {name!r}; shipped: {_describe_shipped(task)}"
                           + ("" if task else "; aliases: " + ", ".join(ALIASES)))
    if task is not None and e.task != task:
        raise _task_error(e, task)
    return Resolved(e.name, e, e.file(scale))


def load_model(name_or_path: str | os.PathLike = "default", scale: "float | tuple[float, float] | None" = None,
               task: str | None = None) -> nn.Module:
    """A ready model in eval mode, from a weights file, a shipped name, an alias or ``bicubic``.

    ``scale`` picks the shipped file (``NAME_xS.safetensors``); multi-scale files
    are reduced to the requested scale. ``scale`` may be a per-axis (s_h, s_w) pair
    (a target size). ``NAME+shrink`` is the integer-then-shrink baseline: NAME at
    the next integer scale, then MATLAB bicubic down to ``scale``. ``task``: as
    :func:`resolve` checks it (names only; a file is taken as it is).
    """
    if isinstance(scale, (tuple, list)):
        scale = float(scale[0]) if scale[0] == scale[1] else (float(scale[0]), float(scale[1]))
    if str(name_or_path).endswith("+shrink"):
        from .models.shrink import IntegerThenShrink
        base = str(name_or_path)[: -len("+shrink")]
        if not is_file(base):
            resolve(base, None, task)  # an unknown or wrong-task name fails here, not at the first image
        return IntegerThenShrink(lambda n: load_model(base, n, task), scale or 2,
                                 name=str(name_or_path)).eval()
    if is_file(name_or_path):
        model = load_weights_file(name_or_path)
        if task == "upscale" and model.spec.level_map:  # a file has no zoo entry to ask
            raise TaskMismatch(f"{name_or_path}: a restorer (it takes a noise or JPEG level), not an upscaler "
                               "(clean with it by kakudai denoise --model FILE)")
    else:
        r = resolve(str(name_or_path), scale, task)
        if r.name == "bicubic":
            model = create_model("bicubic", scale=scale or 2).eval()
        elif r.path is None:
            e = r.entry
            assert e is not None
            declared = not e.scales or (isinstance(scale, (int, float)) and float(scale).is_integer()
                                        and int(scale) in e.scales)
            if declared:  # declared but not in this copy of the package (e.g. before it is trained)
                what = f"{e.name} x{_scale_text(scale)}" if e.scales else e.name
                raise WeightsError(f"{e.path(scale)}: no such weights file ({what} is not shipped yet)")
            at = "without a scale" if scale is None else f"at x{_scale_text(scale)}"
            raise WeightsError(f"no shipped weights for {e.name!r} {at}; shipped: {_describe_shipped(e.task)}")
        else:
            model = load_weights_file(r.path)
    if scale is not None and not isinstance(scale, tuple):
        model = single_scale(model, scale)  # a multi-scale file: the tail for this scale
    return for_inference(model)

