"""Self-describing weights: safetensors tensors + JSON metadata.

The metadata names the architecture and its constructor arguments, so a file
rebuilds its model with no code of its own and no pickle; small facts may ride
along in ``extra``. This module only saves and loads files: which file a name
means is :mod:`kakudai.zoo`'s business.
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

from .models.registry import arch_args_of, arch_of
from .registry import create_model

FORMAT = "kakudai.weights.v1"


class WeightsError(Exception):
    """A weights file is missing, unreadable or does not describe a model."""


def save_model(model: nn.Module, path: str | os.PathLike, extra: dict[str, Any] | None = None) -> Path:
    """Write ``model`` to ``path`` (.safetensors) atomically, with its arch and args."""
    path = Path(path)
    arch = arch_of(model)
    if arch is None:
        raise ValueError("model was not built by create_model(); its architecture is unknown")
    meta = {"format": FORMAT, "arch": arch, "args": json.dumps(arch_args_of(model))}
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

