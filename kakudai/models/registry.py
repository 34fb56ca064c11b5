"""A tiny explicit model registry: ``register`` / ``create_model`` / ``list_models``.

Each model family registers its factory by name in its own module; the
registry never scans folders and never dispatches on strings elsewhere.
It lives inside :mod:`kakudai.models` so that importing it first imports the
package, whose ``__init__`` imports every family: the table is full before
anyone reads it, and the registry imports no model code (no import cycle).
Outside ``models/``, use the public :mod:`kakudai.registry`.
"""

from __future__ import annotations

from typing import Any, Callable

import torch.nn as nn

from .spec import require_spec

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register a model factory (class or function) under ``name``."""

    def deco(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = factory
        return factory

    return deco


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model. The result remembers ``arch`` and ``arch_args``
    so that :mod:`kakudai.checkpoint` can save a self-describing file.

    Raises :class:`~kakudai.models.spec.SpecError` if the model does not declare a valid
    :class:`~kakudai.models.spec.ModelSpec` as ``model.spec``."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(list_models())}")
    model = _REGISTRY[name](**kwargs)
    require_spec(model, f"model {name!r}")
    model.arch = name  # type: ignore[assignment]
    model.arch_args = dict(kwargs)  # type: ignore[assignment]
    return model


def list_models() -> list[str]:
    """Names of all registered architectures, sorted."""
    return sorted(_REGISTRY)


# What a model was built from. create_model sets ``arch`` and ``arch_args``, and
# kakudai.checkpoint.load_weights_file adds ``weights_meta`` (the file's metadata);
# wrappers and models built otherwise have none of them.
def arch_of(model: nn.Module) -> str | None:
    """The registered architecture ``model`` was built as (None: not by create_model)."""
    return model.__dict__.get("arch")


def arch_args_of(model: nn.Module) -> dict[str, Any]:
    """The constructor arguments ``model`` was built with ({} when unknown)."""
    return dict(model.__dict__.get("arch_args") or {})


def weights_meta_of(model: nn.Module) -> dict[str, Any] | None:
    """The metadata of the weights file ``model`` was loaded from (None: not from a file)."""
    return model.__dict__.get("weights_meta")

