"""Self-describing weights: safetensors tensors + JSON metadata.

The metadata names the architecture and its constructor arguments, so a file
rebuilds its model with no code of its own and no pickle. Model cards and
training facts may ride along in ``extra``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .registry import create_model

FORMAT = "kakudai.weights.v1"


class WeightsError(Exception):
    """A weights file is missing, unreadable or does not describe a model."""


def save_model(model: nn.Module, path: str | os.PathLike, extra: dict[str, Any] | None = None) -> Path:
    """Write ``model`` to ``path`` (.safetensors) atomically, with its arch and args."""
    path = Path(path)
    arch = getattr(model, "arch", None)
    if arch is None:
        raise ValueError("model was not built by create_model(); its architecture is unknown")
    meta = {"format": FORMAT, "arch": arch, "args": json.dumps(getattr(model, "arch_args", {}))}
    if extra:
        meta["extra"] = json.dumps(extra)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        save_file(state, str(tmp), metadata=meta)
        os.chmod(tmp, 0o644)  # safetensors creates 0600; shipped weights must be world-readable
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The decoded metadata of a weights file: arch, args and extra."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except FileNotFoundError:
        raise WeightsError(f"{path}: no such weights file") from None
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"{path}: not a valid safetensors file ({e})") from None
    if meta.get("format") != FORMAT or "arch" not in meta:
        raise WeightsError(f"{path}: not a kakudai weights file (no architecture in metadata)")
    try:
        return {"arch": meta["arch"], "args": json.loads(meta.get("args", "{}")),
                "extra": json.loads(meta.get("extra", "{}"))}
    except json.JSONDecodeError as e:
        raise WeightsError(f"{path}: corrupt metadata ({e})") from None


def load_weights_file(path: str | os.PathLike) -> nn.Module:
    """Rebuild the model described by ``path`` and load its weights (eval mode)."""
    meta = read_metadata(path)
    try:
        model = create_model(meta["arch"], **meta["args"])
    except (KeyError, TypeError, ValueError) as e:
        raise WeightsError(f"{path}: cannot build {meta['arch']!r} ({e})") from None
    try:
        state = load_file(str(path))
        model.load_state_dict(state, strict=True)
    except (SafetensorError, RuntimeError, OSError) as e:
        raise WeightsError(f"{path}: weights do not load ({str(e).splitlines()[0]})") from None
    model.weights_meta = meta  # type: ignore[assignment]
    return for_inference(model)


def for_inference(model: nn.Module) -> nn.Module:
    """``model`` in eval mode with channels-last convolution weights, in place.

    oneDNN runs 3x3 convolutions 1.1-1.5x faster in channels-last layout on CPU
    (docs/speed.md); a conv with channels-last weights makes its output
    channels-last too, so the whole network follows without touching inputs.
    """
    return model.eval().to(memory_format=torch.channels_last)


# ------------------------------------------------------------------ shipped weights
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
ALIASES = {"default": "ksr", "fast": "ksr-fast"}
# What an alias renders at scales its fixed-scale files lack: its arbitrary-scale model
# (falling back to ``implicit`` if that one is not shipped).
ARBITRARY = {"default": "implicit", "fast": "implicit-fast"}


def shipped_weights() -> dict[str, list[float]]:
    """Shipped weights by model name -> scales they cover (from the file names)."""
    out: dict[str, list[float]] = {}
    for f in sorted(WEIGHTS_DIR.glob("*.safetensors")):
        stem = f.stem
        if "_x" in stem:
            name, s = stem.rsplit("_x", 1)
            try:
                out.setdefault(name, []).append(float(s))
            except ValueError:
                continue
        else:
            out.setdefault(stem, [])
    return out


def shipped_path(name: str, scale: float | None = None) -> Path | None:
    """The shipped file for ``name`` at ``scale`` (or the scale-free file), if any."""
    name = ALIASES.get(name, name)
    if scale is not None and not isinstance(scale, (tuple, list)):  # per-axis: scale-free only
        s = int(scale) if float(scale).is_integer() else scale
        f = WEIGHTS_DIR / f"{name}_x{s}.safetensors"
        if f.exists():
            return f
    f = WEIGHTS_DIR / f"{name}.safetensors"
    return f if f.exists() else None


def resolve_model_name(name: str, scale: float) -> str:
    """``default``/``fast`` -> the model that serves ``scale``: a shipped fixed-scale
    model if there is one, else the alias's arbitrary-scale model (``ARBITRARY``) or
    ``implicit`` if shipped, else ``bicubic`` (so the tool works before any weights exist)."""
    real = ALIASES.get(name, name)
    if name not in ALIASES:
        return real
    if shipped_path(real, scale) is not None:
        return real
    for any_scale in dict.fromkeys((ARBITRARY[name], "implicit")):
        if shipped_path(any_scale) is not None:
            return any_scale
    return "bicubic"


def load_model(name_or_path: str | os.PathLike = "default", scale: float | None = None) -> nn.Module:
    """A ready model in eval mode, from a weights file, a shipped name, or ``bicubic``.

    ``scale`` picks the shipped file (``NAME_xS.safetensors``); multi-scale files
    are reduced to the requested scale. ``scale`` may be a per-axis (s_h, s_w) pair
    (a target size). ``NAME+shrink`` is the integer-then-shrink baseline: NAME at
    the next integer scale, then MATLAB bicubic down to ``scale``.
    """
    if isinstance(scale, (tuple, list)):
        scale = float(scale[0]) if scale[0] == scale[1] else (float(scale[0]), float(scale[1]))
    if str(name_or_path).endswith("+shrink"):
        from .models.shrink import IntegerThenShrink
        base = str(name_or_path)[: -len("+shrink")]
        return IntegerThenShrink(lambda n: load_model(base, n), scale or 2, name=str(name_or_path)).eval()
    p = Path(name_or_path)
    if p.suffix == ".safetensors" or p.exists():
        model = load_weights_file(p)
    else:
        name = resolve_model_name(str(name_or_path), scale or 2)
        if name == "bicubic":
            model = create_model("bicubic", scale=scale or 2).eval()
        else:
            f = shipped_path(name, scale)
            if f is None:
                have = {k: v for k, v in shipped_weights().items()}
                raise WeightsError(f"no shipped weights for {name!r} at x{scale}; shipped: "
                                   + (", ".join(f"{k} x{'/'.join(f'{s:g}' for s in v) or 'any'}"
                                                for k, v in have.items()) or "none"))
            model = load_weights_file(f)
    scales = getattr(model, "scales", None)
    if (scale is not None and not isinstance(scale, tuple) and scales is not None and len(scales) > 1
            and hasattr(model, "for_scale")):
        meta = getattr(model, "weights_meta", None)
        model = model.for_scale(int(scale)).eval()
        model.weights_meta = meta
    return for_inference(model)
